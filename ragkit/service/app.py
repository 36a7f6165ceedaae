"""The FastAPI application: :func:`create_app` builds it, :func:`serve` runs it with uvicorn.

::

    from ragkit.service import ServiceSettings, create_app, serve

    serve(ServiceSettings.load(Path("service.yaml")))       # what `ragkit serve` does

Everything is under ``/v1`` except ``/healthz``, ``/readyz`` and ``/metrics``
(which need no API key). Stores, pipelines, jobs and auth live on
``app.state.ragkit`` (:class:`~ragkit.service.state.ServiceState`) and reach the
routes through ``Depends``; pass ``pipelines=`` to use pipeline objects built
elsewhere (e.g. with an injected generator).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from ragkit import __version__, tracing
from ragkit.errors import ConfigError, RagkitError
from ragkit.plugins import mount_connector
from ragkit.rag import PipelineConfig, RagPipeline
from ragkit.service.errors import http_error_handler, ragkit_error_handler, validation_error_handler
from ragkit.service.job_recovery import recover as recover_jobs
from ragkit.service.logs import configure_logging
from ragkit.service.middleware import BodyLimitMiddleware, RequestContextMiddleware
from ragkit.service.routes import agents, ask, collections, conversations, evaluations, health, openai, web
from ragkit.service.routes import sql as sql_routes
from ragkit.service.settings import ServiceSettings
from ragkit.service.state import ServiceState

_UPLOAD_PATH = re.compile(r"^/v1/collections/[^/]+/documents/?$")

DESCRIPTION = """\
Retrieval-augmented generation over your collections: upload documents, search
them, ask questions with cited answers (JSON or Server-Sent Events), and talk to
any collection with an OpenAI client (`/v1/chat/completions`, model
`"{collection}"` or `"{collection}:{pipeline}"`).

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`; scopes
nest admin ⊃ write ⊃ read. `/healthz`, `/readyz` and `/metrics` need no key.
"""


def build_pipelines(settings: ServiceSettings) -> dict[str, RagPipeline]:
    """The pipelines named in the settings (recipes are read now; models load on first use)."""
    pipelines: dict[str, RagPipeline] = {}
    for name, spec in settings.pipelines.items():
        if isinstance(spec, str):
            pipeline = RagPipeline.load(spec)
            pipeline.name = name
        else:
            pipeline = RagPipeline(PipelineConfig.parse(spec, where=f"pipelines.{name}"), name=name)
        pipelines[name] = pipeline
    return pipelines


def create_app(settings: ServiceSettings | None = None, *, pipelines: dict[str, RagPipeline] | None = None) -> FastAPI:
    """The service as a FastAPI app; see the module docstring.

    Raises :class:`~ragkit.errors.ConfigError` when the settings expose an
    unauthenticated service beyond loopback, or a pipeline recipe is invalid.
    """
    settings = settings if settings is not None else ServiceSettings.load()
    settings.check_exposure()
    pipelines = pipelines if pipelines is not None else build_pipelines(settings)
    if settings.default_pipeline not in pipelines:
        known = ", ".join(sorted(pipelines)) or "none"
        raise ConfigError(f"default_pipeline {settings.default_pipeline!r} is not one of the pipelines ({known})")
    state = ServiceState(settings, pipelines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # ingest jobs the last run left queued or running: resumed or marked interrupted (job_recovery)
        await state.run(recover_jobs, state.jobs, settings.ingest_roots, settings.resume_jobs)
        if settings.preload:
            await state.run(lambda: [p.generator for p in pipelines.values()])
        try:
            yield
        finally:
            await asyncio.to_thread(state.close)

    # tracing on (OTEL_* variables, docs/tracing.md): FastAPI's own telemetry makes the HTTP server spans
    provider = tracing.tracer_provider()
    telemetry = TelemetryConfig(tracer_provider=provider) if provider is not None else None
    app = FastAPI(title="ragkit", version=__version__, description=DESCRIPTION, lifespan=lifespan, telemetry=telemetry)
    app.state.ragkit = state
    app.add_exception_handler(RagkitError, ragkit_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for module in (collections, ask, conversations, evaluations, openai, agents, health):
        app.include_router(module.router)
    app.include_router(sql_routes.router)
    web.install(app)  # the web page at /, offline /docs and /redoc
    mount_connector(app, "mcp")  # /mcp (streamable HTTP, the same API keys) when ragkit-mcp is installed

    def limit_for(method: str, path: str) -> int:
        if method == "POST" and _UPLOAD_PATH.match(path):
            return settings.max_request_bytes
        return settings.max_json_bytes

    # the last added is the outermost: request context → CORS → body limit → routes
    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Location"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=state.metrics)
    return app


def serve(settings: ServiceSettings) -> None:
    """Run the service with uvicorn in this process (one worker: the models are per process)."""
    settings.check_exposure()
    configure_logging(settings.log_level, settings.json_logs())
    app = create_app(settings)
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
