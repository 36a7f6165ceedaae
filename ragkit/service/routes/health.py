"""Liveness, readiness and metrics. These need no API key (they reveal no documents)."""

from __future__ import annotations

import tempfile

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from ragkit import registry
from ragkit.service.models import Health, Readiness
from ragkit.service.state import ServiceState, get_state

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


def _checks(state: ServiceState) -> dict[str, str]:
    checks: dict[str, str] = {}
    store = state.settings.store_dir
    try:
        store.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=store, prefix=".readyz-"):
            pass
        checks["store"] = "ok"
    except OSError as exc:
        checks["store"] = f"store folder {store} is not writable: {exc.strerror or exc}"
    for name, pipeline in sorted(state.pipelines.items()):
        if pipeline.has_generator:
            checks[f"pipeline:{name}"] = "ok"
            continue
        try:
            registry.get("generator", str(pipeline.config.generator["type"]))
            checks[f"pipeline:{name}"] = "ok"
        except Exception as exc:
            checks[f"pipeline:{name}"] = f"generator not loadable: {exc}"
    return checks


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: a check failed"}},
    summary="Readiness",
)
async def readyz(state: ServiceState = Depends(get_state)) -> JSONResponse:
    """Ready when the store folder is writable and every pipeline's generator can be built."""
    checks = await state.run(_checks, state)
    ready = all(value == "ok" for value in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Metrics"}},
    summary="Prometheus metrics",
)
async def metrics(state: ServiceState = Depends(get_state)) -> Response:
    """Request counts and latencies per route, pipeline stage seconds, ingest job counters."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
