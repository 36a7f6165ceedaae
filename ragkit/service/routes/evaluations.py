"""Evaluation runs: start one in the background, follow it, fetch its reports, cancel or delete it.

A run evaluates a suite (see ``docs/evaluation.md``) exactly as ``ragkit eval
run`` does. The suite is a file on the server or, for admin keys, an inline
suite; either way every file and folder it reads must lie inside the
service's ``ingest_roots`` (else 403), and it is checked before the run is
queued, so a mistake (a missing questions file, an unknown metric, k < 1, an
unknown pipeline) is a 400 that names the field, not a failed run later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse, JSONResponse

from ragkit.evaluation.report_data import REPORT_FILES
from ragkit.evaluation.suite import Suite, load_suite
from ragkit.service.auth import Principal, require
from ragkit.service.errors import ServiceHTTPError, error_responses
from ragkit.service.evaluations import Evaluation
from ragkit.service.models import EvaluationInfo, EvaluationList, EvaluationRequest
from ragkit.service.paths import check_inside_roots, resolve_server_path
from ragkit.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1", tags=["evaluations"])

_AUTH = (401, 403)
_MEDIA_TYPES = {"json": "application/json", "markdown": "text/markdown; charset=utf-8", "html": "text/html"}


def _info(run: Evaluation) -> EvaluationInfo:
    return EvaluationInfo.model_validate(run.to_dict())


def load_request_suite(roots: list[Path], body: EvaluationRequest, principal: Principal) -> Suite:
    """The request's suite, read, confined to ``roots`` and checked (blocking: run it in a thread)."""
    if isinstance(body.suite, str):
        suite = load_suite(resolve_server_path(roots, body.suite), check=False)
    else:
        if "admin" not in principal.scopes:
            raise ServiceHTTPError(
                403,
                f"API key {principal.name!r} lacks the 'admin' scope an inline suite needs "
                "(it may name any generator or judge endpoint); name a suite file instead",
                "Forbidden",
            )
        if not roots:
            resolve_server_path(roots, ".")  # the 403 that says no ingest roots are configured
        suite = Suite.parse(body.suite, base_dir=roots[0], where="suite")
    for field, path in suite.paths_read():
        check_inside_roots(roots, path, f"{field}")
    suite.check()
    suite.with_overrides(sample=body.sample, pipelines=body.pipelines)  # unknown pipeline names → 400
    return suite


@router.post(
    "/evaluations",
    status_code=202,
    response_model=EvaluationInfo,
    responses=error_responses(400, *_AUTH, 404, 413, 422),
    summary="Start an evaluation",
)
async def start_evaluation(
    body: EvaluationRequest,
    state: ServiceState = Depends(get_state),
    principal: Principal = Depends(require("write")),
) -> JSONResponse:
    """Check the suite, then queue the run (one runs at a time); answers 202 with the run to poll."""
    suite = await state.run(load_request_suite, state.settings.ingest_roots, body, principal)
    run = await state.run(state.evaluations.submit, suite, body.sample, body.pipelines, principal.name)
    payload = _info(run).model_dump(mode="json")
    return JSONResponse(payload, status_code=202, headers={"Location": f"/v1/evaluations/{run.id}"})


@router.get(
    "/evaluations",
    response_model=EvaluationList,
    responses=error_responses(*_AUTH, 422),
    summary="List evaluations",
)
async def list_evaluations(
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require("read")),
) -> EvaluationList:
    """Every run this service knows (including those finished before a restart), newest first."""
    runs = await state.run(state.evaluations.runs)
    return EvaluationList(evaluations=[_info(run) for run in runs])


@router.get(
    "/evaluations/{evaluation_id}",
    response_model=EvaluationInfo,
    responses=error_responses(*_AUTH, 404, 422),
    summary="Show an evaluation",
)
async def get_evaluation(
    evaluation_id: str,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require("read")),
) -> EvaluationInfo:
    """Status, progress (stage, done, total, errors) and, once succeeded, the summary and report links."""
    return _info(await state.run(state.evaluations.get, evaluation_id))


@router.get(
    "/evaluations/{evaluation_id}/report",
    responses={
        200: {
            "description": "The report file",
            "content": {"application/json": {}, "text/markdown": {}, "text/html": {}},
        },
        **error_responses(*_AUTH, 404, 409, 422),
    },
    response_class=Response,
    summary="Download an evaluation report",
)
async def get_evaluation_report(
    evaluation_id: str,
    format: Literal["json", "markdown", "html"] = Query(default="json", description="Which report"),
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require("read")),
) -> FileResponse:
    """The complete JSON report, the Markdown summary or the self-contained HTML page (409 until succeeded)."""
    path = await state.run(state.evaluations.report_file, evaluation_id, format)
    filename = f"{evaluation_id}-{REPORT_FILES[format]}"
    return FileResponse(path, media_type=_MEDIA_TYPES[format], filename=filename, content_disposition_type="inline")


@router.post(
    "/evaluations/{evaluation_id}/cancel",
    response_model=EvaluationInfo,
    responses=error_responses(*_AUTH, 404, 409, 422),
    summary="Cancel an evaluation",
)
async def cancel_evaluation(
    evaluation_id: str,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require("write")),
) -> EvaluationInfo:
    """A queued run is cancelled at once, a running one at its next step (poll until ``cancelled``)."""
    return _info(await state.run(state.evaluations.cancel, evaluation_id))


@router.delete(
    "/evaluations/{evaluation_id}",
    status_code=204,
    responses=error_responses(*_AUTH, 404, 409, 422),
    summary="Delete an evaluation",
)
async def delete_evaluation(
    evaluation_id: str,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require("write")),
) -> Response:
    """Remove a finished run and its reports (409 while it is queued or running: cancel it first)."""
    await state.run(state.evaluations.delete, evaluation_id)
    return Response(status_code=204)
