"""ragkit as an MCP server: search and ask as tools, documents as resources.

:class:`RagkitMcp` makes an MCP :class:`~mcp.server.Server` over a
:class:`~ragkit.service.state.ServiceState`, the object the REST service
runs on: the same collection cache, the same configured pipelines (and the
same plain dense/lexical search without one), the same answer slots. Tools:

``search``
    ``collection``, ``query``, ``top_k``, ``filters``, ``pipeline``,
    ``mode``: the hits, each with ``source``, ``chunk_id``, ``start``/``end``,
    ``page``, ``section``, ``score`` and ``text`` (structured content), and
    numbered passages as text.
``ask``
    ``collection``, ``question``, ``pipeline``, ``top_k``, ``filters``,
    ``max_tokens``: the cited answer; its citations (the same fields, plus
    ``number`` and ``quote``) as structured content, the answer with a
    ``Sources:`` line as text.
``list_collections``
    The collections the caller may see, with document and chunk counts.

Resources: every ingested document as
``ragkit://collections/{name}/documents/{source}`` (the source id
percent-encoded, ``/`` included), listed and readable (the resource template
has the same form). Reading one sends what ``GET
/v1/collections/{name}/sources/{source}`` sends (an upload's stored copy, or
a file inside the service's ``ingest_roots``), as text when it is UTF-8 and
as a blob otherwise; when no such file is reachable, the document's text as
the collection's chunks hold it.

Who the caller is comes from ``principal_of(ctx)``: over HTTP the API key the
request carried (see :mod:`ragkit_mcp.http`), over stdio the local user.
A key limited to some collections sees only those; any other name gets the
same "not found" as a collection that does not exist.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import quote, unquote

import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragkit import __version__
from ragkit.errors import InputError, NotFoundError, RagkitError
from ragkit.protocols import capabilities_of
from ragkit.rag import RagPipeline
from ragkit.schema import Chunk, Hit, chunk_location, hit_dicts
from ragkit.service.auth import Principal
from ragkit.service.state import ServiceState

__all__ = ["RESOURCE_TEMPLATE", "RagkitMcp", "document_uri", "parse_document_uri", "read_document"]

SCHEME = "ragkit"
RESOURCE_TEMPLATE = "ragkit://collections/{name}/documents/{source}"
"""The URI of a document resource; ``source`` is percent-encoded (``/`` too)."""
RESOURCE_NOT_FOUND = -32002
"""The MCP error code of an unknown resource."""
MAX_TOP_K = 50
QUERY_CHARS = 1000
TEXT_CHARS = 800
"""Each passage's text is cut to this many characters in the readable text (structured content keeps it whole)."""

PrincipalOf = Callable[[ServerRequestContext[Any, Any]], Principal]


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchArguments(_Arguments):
    """The ``search`` tool's arguments."""

    collection: str = Field(min_length=1, description="The collection to search (list_collections names them).")
    query: str = Field(min_length=1, max_length=QUERY_CHARS, description="What to search for.")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description=f"How many passages, 1 to {MAX_TOP_K}.")
    filters: str | dict[str, Any] | None = Field(
        None,
        description='A metadata filter, as an expression (source == "guide.md" and page >= 2) or as JSON '
        '({"source": "guide.md"}); leave it out to search everything.',
    )
    pipeline: str | None = Field(
        None, description="A configured pipeline whose retrieval stages search; leave it out for a plain search."
    )
    mode: Literal["dense", "lexical"] | None = Field(
        None, description="dense (the default) or lexical; with a pipeline, one of its retrievers alone."
    )


class AskArguments(_Arguments):
    """The ``ask`` tool's arguments."""

    collection: str = Field(min_length=1, description="The collection whose documents answer.")
    question: str = Field(min_length=1, max_length=QUERY_CHARS, description="The question, as a full sentence.")
    pipeline: str | None = Field(None, description="A configured pipeline (default: the server's default).")
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K, description="Context passages (default: the pipeline's).")
    filters: str | dict[str, Any] | None = Field(None, description="A metadata filter, as for search.")
    max_tokens: int | None = Field(
        None, ge=1, description="Longest answer in tokens; may lower the pipeline's limit, never raise it."
    )


class ListArguments(_Arguments):
    """The ``list_collections`` tool's arguments (none)."""


def document_uri(collection: str, source: str) -> str:
    """The resource URI of ``source`` in ``collection``."""
    return f"{SCHEME}://collections/{quote(collection, safe='')}/documents/{quote(source, safe='')}"


def parse_document_uri(uri: str) -> tuple[str, str]:
    """``(collection, source)`` of a document URI; :class:`NotFoundError` for any other URI."""
    prefix = f"{SCHEME}://collections/"
    rest = uri[len(prefix) :] if uri.startswith(prefix) else ""
    name, sep, source = rest.partition("/documents/")
    if not sep or not name or not source or "/" in name or "/" in source:
        raise NotFoundError(f"unknown resource {uri!r}; documents are {RESOURCE_TEMPLATE}")
    return unquote(name), unquote(source)


def _label(where: dict[str, Any]) -> str:
    label = str(where["source"])
    if where.get("section"):
        label += f" › {where['section']}"
    if where.get("page") is not None:
        label += f", page {where['page']}"
    return label


def _passages(hits: list[Hit]) -> str:
    blocks = []
    for number, hit in enumerate(hits, 1):
        text = " ".join(hit.chunk.text.split())
        if len(text) > TEXT_CHARS:
            text = text[: TEXT_CHARS - 1].rstrip() + "…"
        blocks.append(f"[{number}] {_label(chunk_location(hit.chunk))} (score {hit.score:.3f})\n{text}")
    return "\n\n".join(blocks)


def _tool(name: str, description: str, model: type[BaseModel], read_only: bool = True) -> types.Tool:
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    return types.Tool(
        name=name,
        description=description,
        input_schema=schema,
        annotations=types.ToolAnnotations(read_only_hint=read_only, open_world_hint=False),
    )


TOOLS = [
    _tool(
        "search",
        "Search a ragkit collection for passages relevant to a query. Returns the passages with their "
        "source, chunk id, character span, page, section and score.",
        SearchArguments,
    ),
    _tool(
        "ask",
        "Ask a question of a ragkit collection's documents. Returns an answer that cites its sources "
        "([1], [2] ...), with each citation's source, chunk id, span, page and section.",
        AskArguments,
    ),
    _tool(
        "list_collections",
        "List the ragkit collections you may search, with their document and chunk counts.",
        ListArguments,
    ),
]


class RagkitMcp:
    """The handlers of ragkit's MCP server over one :class:`ServiceState`; :meth:`server` builds the server.

    ``principal_of`` says who calls (see the module docstring).
    ``allow_recipes`` lets ``pipeline`` name any recipe (``hybrid``, a YAML
    path) besides the configured pipelines: for the local user over stdio,
    never for the HTTP endpoint. ``page_size`` is how many documents one
    ``resources/list`` answer holds (the next page comes with its cursor).
    """

    def __init__(
        self, state: ServiceState, principal_of: PrincipalOf, *, allow_recipes: bool = False, page_size: int = 500
    ) -> None:
        if page_size < 1:
            raise InputError(f"page_size must be at least 1, got {page_size}")
        self.state = state
        self.page_size = page_size
        """Documents per ``resources/list`` page."""
        self.principal_of = principal_of
        self.allow_recipes = allow_recipes
        self._recipes: dict[str, RagPipeline] = {}

    def server(self) -> Server[Any]:
        """The MCP server (a low-level :class:`mcp.server.Server`), to run over stdio or streamable HTTP."""
        return Server(
            "ragkit",
            version=__version__,
            title="ragkit",
            instructions="Search and ask questions of ragkit document collections; answers cite their sources. "
            "Call list_collections first to learn the collection names.",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource,
        )

    # -- who and what ----------------------------------------------------------------------

    def _caller(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        principal = self.principal_of(ctx)
        if "read" not in principal.scopes:
            raise InputError(f"API key {principal.name!r} lacks the 'read' scope")
        return principal

    async def _visible(self, principal: Principal) -> list[str]:
        names = await self.state.run(self.state.collections.names)
        return principal.visible(names)

    async def _check(self, principal: Principal, name: str) -> None:
        """Not found (the same answer as for a missing collection) unless ``principal`` may read ``name``."""
        principal.check_collection(name)
        if principal.limited and name not in await self.state.run(self.state.collections.names):
            raise principal.not_found(name)

    def _pipeline(self, name: str | None) -> RagPipeline:
        if name is None or name in self.state.pipelines or not self.allow_recipes:
            return self.state.pipeline(name)
        if name not in self._recipes:
            self._recipes[name] = RagPipeline.load(name)
        return self._recipes[name]

    # -- tools -----------------------------------------------------------------------------

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        """The three tools."""
        return types.ListToolsResult(tools=TOOLS)

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        """Run one tool; every ragkit error (bad arguments, unknown collection ...) is an error result."""
        handlers: dict[str, tuple[type[BaseModel], Callable[[Principal, Any], Awaitable[types.CallToolResult]]]] = {
            "search": (SearchArguments, self._search),
            "ask": (AskArguments, self._ask),
            "list_collections": (ListArguments, self._list),
        }
        if params.name not in handlers:
            return _error(f"unknown tool {params.name!r}; tools: {', '.join(handlers)}")
        model, handler = handlers[params.name]
        try:
            arguments = model.model_validate(params.arguments or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()[:3]
            )
            return _error(f"{params.name}: invalid arguments: {problems}")
        try:
            return await handler(self._caller(ctx), arguments)
        except RagkitError as exc:
            return _error(f"{params.name}: {exc}")

    async def _search(self, principal: Principal, args: SearchArguments) -> types.CallToolResult:
        await self._check(principal, args.collection)
        state = self.state
        searcher = self._pipeline(args.pipeline) if args.pipeline else state.search_pipeline(args.mode or "dense")
        mode = args.mode if args.pipeline else None
        filters = args.filters or None

        def run() -> list[Hit]:
            collection = state.collections.get(args.collection)
            return searcher.search(args.query, collection, args.top_k, filters, mode).hits[: args.top_k]

        hits = await state.run(run)
        structured = {
            "collection": args.collection,
            "query": args.query,
            "pipeline": args.pipeline,
            "hits": hit_dicts(hits),
        }
        text = _passages(hits) if hits else f"No passages found in {args.collection!r} for {args.query!r}."
        return types.CallToolResult(content=[_text(text)], structured_content=structured)

    async def _ask(self, principal: Principal, args: AskArguments) -> types.CallToolResult:
        await self._check(principal, args.collection)
        state = self.state
        pipeline = self._pipeline(args.pipeline)
        collection = await state.run(state.collections.get, args.collection)
        options = state.options(pipeline, args.max_tokens)
        async with state.ask_slots():
            answer = await pipeline.aask(args.question, collection, args.top_k, args.filters or None, None, options)
        state.metrics.observe_answer(answer)
        citations = [c.to_dict() for c in answer.citations]
        structured = {
            "collection": args.collection,
            "question": args.question,
            "pipeline": pipeline.name,
            "answer": answer.text,
            "grounded": answer.grounded,
            "citations": citations,
            "usage": answer.usage.to_dict(),
        }
        text = answer.text.strip()
        if answer.citations:
            text += "\n\nSources:\n" + "\n".join(
                f"[{c.number}] {_label(c.to_dict())} ({document_uri(args.collection, c.source)})"
                for c in answer.citations
            )
        return types.CallToolResult(content=[_text(text)], structured_content=structured)

    async def _list(self, principal: Principal, args: ListArguments) -> types.CallToolResult:
        names = await self._visible(principal)

        def describe() -> list[dict[str, Any]]:
            entries = []
            for name in names:
                collection = self.state.collections.get(name)
                stats = collection.info().get("stats", {})
                documents = stats.get("sources")
                if documents is None:
                    documents = len(collection.store.sources())
                entries.append({"name": name, "documents": int(documents), "chunks": int(stats.get("chunks", 0))})
            return entries

        entries = await self.state.run(describe)
        text = "\n".join(f"{e['name']}: {e['documents']} documents, {e['chunks']} chunks" for e in entries)
        return types.CallToolResult(
            content=[_text(text or "There are no collections.")], structured_content={"collections": entries}
        )

    # -- resources -------------------------------------------------------------------------

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        """The documents of every collection the caller may see, :attr:`page_size` at a time (then a cursor)."""
        try:
            principal = self._caller(ctx)
            offset = _offset(params.cursor if params is not None else None)
        except RagkitError as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        names = await self._visible(principal)
        size = self.page_size

        def listing() -> tuple[list[types.Resource], bool]:
            resources: list[types.Resource] = []
            seen = 0
            for name in names:
                records = self.state.collections.get(name).store.sources()
                if seen + len(records) <= offset:  # a whole collection before this page
                    seen += len(records)
                    continue
                for source, record in sorted(records.items()):
                    seen += 1
                    if seen <= offset:
                        continue
                    if len(resources) == size:
                        return resources, True
                    resources.append(
                        types.Resource(
                            uri=document_uri(name, source),
                            name=source,
                            title=f"{PurePosixPath(source).name} ({name})",
                            description=f"A document of the {name!r} collection ({record.chunk_count} chunks)",
                            mime_type=mimetypes.guess_type(PurePosixPath(source).name)[0] or "text/plain",
                            size=record.size or None,
                        )
                    )
            return resources, False

        resources, more = await self.state.run(listing)
        cursor = str(offset + len(resources)) if more else None
        return types.ListResourcesResult(resources=resources, next_cursor=cursor)

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        """The document URI template."""
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    uri_template=RESOURCE_TEMPLATE,
                    name="document",
                    title="A document of a collection",
                    description="An ingested document by collection and source id (percent-encoded).",
                )
            ]
        )

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        """One document: its file as text (or a blob), else its text from the chunks.

        An unknown or hidden document is the MCP error ``-32002`` (resource not found).
        """
        uri = str(params.uri)
        try:
            principal = self._caller(ctx)
            name, source = parse_document_uri(uri)
            await self._check(principal, name)
            content = await self.state.run(read_document, self.state, name, source)
        except NotFoundError as exc:
            raise MCPError(RESOURCE_NOT_FOUND, str(exc), {"uri": uri}) from None
        except RagkitError as exc:
            raise MCPError(INVALID_PARAMS, str(exc), {"uri": uri}) from None
        mime = mimetypes.guess_type(PurePosixPath(source).name)[0]
        if isinstance(content, bytes):
            import base64

            blob = types.BlobResourceContents(
                uri=uri, blob=base64.b64encode(content).decode("ascii"), mime_type=mime or "application/octet-stream"
            )
            return types.ReadResourceResult(contents=[blob])
        text_mime = mime if mime and (mime.startswith("text/") or mime.endswith(("json", "xml"))) else "text/plain"
        contents = types.TextResourceContents(uri=uri, text=content, mime_type=text_mime)
        return types.ReadResourceResult(contents=[contents])


def _offset(cursor: str | None) -> int:
    """Where a ``resources/list`` page starts: the cursor the previous page returned (an offset)."""
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise InputError(f"invalid cursor {cursor!r}: pass the nextCursor of the previous page")
    return int(cursor)


def read_document(state: ServiceState, name: str, source: str) -> str | bytes:
    """What the resource of ``source`` holds: the file the REST download sends, else the text of its chunks.

    The file (an upload's copy, or a file inside ``ingest_roots``, exactly as
    ``GET /v1/collections/{name}/sources/{source}`` finds it) is returned as
    text when it is UTF-8, as bytes otherwise. With no reachable file the
    document's text is pieced together from its chunks, in order of their
    character offsets (overlaps removed).
    """
    from ragkit.service.routes.collections import downloadable_source

    try:
        path: Path | None = downloadable_source(state, name, source)
    except NotFoundError:
        path = None
    if path is not None:
        data = path.read_bytes()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data
    collection = state.collections.get(name)
    record = collection.store.sources().get(source)
    if record is None:
        raise NotFoundError(f"collection {name!r} has no document {source!r}")
    store = collection.store
    if "chunks_of_documents" in capabilities_of(store) and record.document_ids:
        chunks = store.chunks_of_documents(record.document_ids)  # type: ignore[attr-defined]
    else:
        chunks = [c for batch in store.iter_chunks() for c in batch if c.source == source]
    return stitch([c for c in chunks if c.source == source])


def stitch(chunks: list[Chunk]) -> str:
    """The document text that ``chunks`` cover, in offset order, overlapping parts once."""
    ordered = sorted(chunks, key=lambda c: (c.start if c.start is not None else 0, c.id))
    parts: list[str] = []
    cursor = 0
    for chunk in ordered:
        start = chunk.start if chunk.start is not None else cursor
        end = chunk.end if chunk.end is not None else start + len(chunk.text)
        if end <= cursor:
            continue
        text = chunk.text
        if start < cursor and end - start == len(text):
            text = text[cursor - start :]
        elif parts and start > cursor:
            parts.append("\n")
        parts.append(text)
        cursor = max(cursor, end)
    return "".join(parts)


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(message)], is_error=True)
