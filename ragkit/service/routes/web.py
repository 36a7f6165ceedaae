"""The web page at ``/`` and offline API docs at ``/docs`` and ``/redoc``.

The page is three static files in ``ragkit/service/web`` (plain HTML, CSS and
JavaScript, no build step, nothing from a CDN) that talk to the ``/v1`` routes
with the API key the user types in. The page itself needs no key: it holds no
data until the API answers.

FastAPI's own ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN and
show nothing offline. :func:`install` replaces them: with the ``fastapi-offline``
package (in the ``serve`` extra) installed, the same Swagger UI and ReDoc are
served from its bundled assets under ``/docs/assets``; without it, ``/docs`` is
a small page listing the operations of ``/openapi.json``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from ragkit.collection.texts import documents_by_id
from ragkit.errors import NotFoundError
from ragkit.service.auth import Principal, require_collection
from ragkit.service.errors import error_responses
from ragkit.service.state import ServiceState, get_state

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
"""The page's static files."""
DOCS_ASSETS = "/docs/assets"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The web page."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


class SourceDocument(BaseModel):
    """One document of a source as the collection holds it (a PDF page, a CSV row, a whole text file)."""

    id: str
    text: str
    page: int | None = None
    row: int | None = None


class SourceText(BaseModel):
    """The extracted text of a source, document by document; citations' ``start``/``end`` index ``text``."""

    collection: str
    source: str
    documents: list[SourceDocument]


@router.get(
    "/v1/collections/{name}/texts/{source:path}",
    response_model=SourceText,
    responses=error_responses(400, 401, 403, 404, 422),
    summary="The extracted text of a source",
    tags=["documents"],
)
async def source_text(
    name: str,
    source: str,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("read")),
) -> SourceText:
    """The text the collection extracted from ``source`` (rebuilt from its chunks), one entry per document.

    The page shows a citation with it: the document ``document_id`` names, with ``text[start:end]`` marked.
    """

    def read() -> list[SourceDocument]:
        found = documents_by_id(state.collections.get(name), [source])
        if not found:
            raise NotFoundError(f"collection {name!r} has no source {source!r}")
        return [
            SourceDocument(id=d.id, text=d.text or "", page=d.metadata.get("page"), row=d.metadata.get("row"))
            for d in found
        ]

    return SourceText(collection=name, source=source, documents=await state.run(read))


def swagger_assets() -> Path | None:
    """The folder of Swagger UI and ReDoc assets that ``fastapi-offline`` ships, or ``None`` without it."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).resolve().parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def operations_page(schema: dict[str, Any]) -> str:
    """A plain HTML list of the operations in an OpenAPI ``schema`` (the ``/docs`` page without Swagger UI)."""
    rows = []
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            summary = operation.get("summary") or operation.get("operationId") or ""
            rows.append(
                f"<li><code>{html.escape(method.upper())} {html.escape(path)}</code> {html.escape(summary)}</li>"
            )
    title = html.escape(str(schema.get("info", {}).get("title", "API")))
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} operations</title></head>'
        f"<body><h1>{title} operations</h1><p>The full schema: <a href='/openapi.json'>/openapi.json</a>. "
        "Install <code>fastapi-offline</code> for the interactive Swagger UI.</p>"
        f"<ul>{''.join(rows)}</ul></body></html>"
    )


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` (and its files under ``/web``) and replace ``/docs`` and ``/redoc`` by offline ones."""
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in ("/docs", "/redoc")]
    app.include_router(router)
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    assets = swagger_assets()
    title = f"{app.title} API"
    if assets is None:

        @app.get("/docs", include_in_schema=False)
        async def operations() -> HTMLResponse:
            return HTMLResponse(operations_page(app.openapi()))

        return
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
