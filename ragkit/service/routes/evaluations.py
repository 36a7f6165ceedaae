"""Evaluation runs: start one in the background, follow it, fetch its reports, cancel or delete it.

A run evaluates a suite (see ``docs/evaluation.md``) exactly as ``ragkit eval
run`` does. The suite is a file on the server or, for admin keys without a
collection limit, an inline suite; either way every file and folder it reads
or names must lie inside the service's ``ingest_roots`` and every server it
names must be allowed (else 403), and it is checked before the run is
queued, so a mistake (a missing questions file, an unknown metric, k < 1, an
unknown pipeline) is a 400 that names the field, not a failed run later.

A run belongs to the key that started it and to the collection it reads (the
suite's eval collection): a key sees, reads and changes only runs whose
collections are all among its own (a run recorded without them: only keys
without a limit); cancelling or deleting one also needs to be its owner or an
admin key without a collection limit. A run another key may not see is a 404,
like an unknown one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse, JSONResponse

from ragkit.errors import NotFoundError
from ragkit.evaluation.report_data import REPORT_FILES
from ragkit.evaluation.suite import Suite, load_suite
from ragkit.service.auth import Principal, require
from ragkit.service.errors import ServiceHTTPError, error_responses
from ragkit.service.evaluations import Evaluation
from ragkit.service.models import EvaluationInfo, EvaluationList, EvaluationRequest
from ragkit.service.paths import check_inside_roots, confine_config, endpoints_in, resolve_server_path
from ragkit.service.state import ServiceState, get_state
from ragkit.yaml_io import read_mapping

router = APIRouter(prefix="/v1", tags=["evaluations"])

_AUTH = (401, 403)
_MEDIA_TYPES = {"json": "application/json", "markdown": "text/markdown; charset=utf-8", "html": "text/html"}


def _info(run: Evaluation) -> EvaluationInfo:
    return EvaluationInfo.model_validate(run.to_dict())


def load_request_suite(
    roots: list[Path], body: EvaluationRequest, principal: Principal, allowed_endpoints: Sequence[str] = ()
) -> Suite:
    """The request's suite, read, confined to ``roots`` and ``allowed_endpoints``, and checked.

    Blocking: run it in a thread. Every file the suite reads and every path or server URL its component
    options name is checked before any of them is opened or called.
    """
    if isinstance(body.suite, str):
        suite = load_suite(resolve_server_path(roots, body.suite), check=False)
    else:
        if not principal.unlimited_admin:
            raise ServiceHTTPError(
                403,
                f"API key {principal.name!r} lacks the 'admin' scope with no collection limit that an inline "
                "suite needs (it may name any generator or judge endpoint); name a suite file instead",
                "Forbidden",
            )
        if not roots:
            resolve_server_path(roots, ".")  # the 403 that says no ingest roots are configured
        suite = Suite.parse(body.suite, base_dir=roots[0], where="suite")
    for field, path in suite.paths_read():
        check_inside_roots(roots, path, f"{field}")
    confine_suite(suite, roots, allowed_endpoints)
    suite.check()
    suite.with_overrides(sample=body.sample, pipelines=body.pipelines)  # unknown pipeline names → 400
    return suite


def confine_suite(suite: Suite, roots: list[Path], allowed_endpoints: Sequence[str]) -> None:
    """403 if a component option of ``suite`` names a path outside ``roots`` or a server URL not allowed.

    The options of the recipe files the suite names are checked too (recipes by name are the operator's).
    """
    where = suite.source
    confine_config(suite.judge, f"{where}: judge", roots, allowed_endpoints)
    confine_config(suite.embedder, f"{where}: embedder", roots, allowed_endpoints)
    for index, metric in enumerate(suite.metrics):
        confine_config(metric.options, f"{where}: metrics[{index}] ({metric.name})", roots, allowed_endpoints)
    if suite.documents.loader is not None:
        loader = suite.documents.loader.model_dump(mode="json")
        confine_config(loader, f"{where}: documents.loader", roots, allowed_endpoints)
    if isinstance(suite.documents.collection, dict):
        confine_config(suite.documents.collection, f"{where}: documents.collection", roots, allowed_endpoints)
    for index, spec in enumerate(suite.pipelines):
        confine_config(spec.config, f"{where}: pipelines[{index}].config", roots, allowed_endpoints)
    for field, path in suite.paths_read():  # recipe files, inside the roots (checked before): their options
        if field not in ("documents.path", "questions.path") and path.is_file():
            confine_config(read_mapping(path, "recipe"), f"{where}: {field} ({path})", roots, allowed_endpoints)


def service_endpoints(state: ServiceState) -> list[str]:
    """The operator's ``allowed_endpoints`` and every server URL the service's own pipelines use."""
    found = list(state.settings.allowed_endpoints)
    for pipeline in state.pipelines.values():
        found.extend(endpoints_in(pipeline.config.model_dump(mode="json")))
    for recipe in state.settings.pipelines.values():
        if isinstance(recipe, dict):
            found.extend(endpoints_in(recipe))
    return found


async def _visible_run(state: ServiceState, evaluation_id: str, principal: Principal) -> Evaluation:
    """The run, if ``principal`` may read every collection it reads; else the 404 of an unknown run."""
    run = await state.run(state.evaluations.get, evaluation_id)
    if not principal.may_access_all(run.collections):
        raise NotFoundError(f"no evaluation {evaluation_id!r}")
    return run


def _check_may_change(run: Evaluation, principal: Principal) -> None:
    """403 unless ``principal`` started ``run`` or is an admin key without a collection limit."""
    if not principal.unlimited_admin and (run.owner is None or run.owner != principal.name):
        raise ServiceHTTPError(
            403,
            f"evaluation {run.id} belongs to API key {run.owner or 'unknown'!r}: only that key or an admin key "
            "without a collection limit may cancel or delete it",
            "Forbidden",
        )


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
    roots = state.settings.ingest_roots
    suite = await state.run(load_request_suite, roots, body, principal, service_endpoints(state))
    collections = [await state.run(suite.collection_name)]
    forbidden = [name for name in collections if not principal.may_access(name)]
    if forbidden:
        allowed = ", ".join(principal.collections or ()) or "none"
        raise ServiceHTTPError(
            403,
            f"API key {principal.name!r} may not start this run: it reads the evaluation collection "
            f"{forbidden[0]!r} (the suite's name and a hash of its documents and collection config), "
            f"which is not among the key's collections ({allowed})",
            "Forbidden",
        )
    run = await state.run(state.evaluations.submit, suite, body.sample, body.pipelines, principal.name, collections)
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
    principal: Principal = Depends(require("read")),
) -> EvaluationList:
    """The runs this key may read (including those finished before a restart), newest first."""
    runs = await state.run(state.evaluations.runs)
    return EvaluationList(evaluations=[_info(run) for run in runs if principal.may_access_all(run.collections)])


@router.get(
    "/evaluations/{evaluation_id}",
    response_model=EvaluationInfo,
    responses=error_responses(*_AUTH, 404, 422),
    summary="Show an evaluation",
)
async def get_evaluation(
    evaluation_id: str,
    state: ServiceState = Depends(get_state),
    principal: Principal = Depends(require("read")),
) -> EvaluationInfo:
    """Status, progress (stage, done, total, errors) and, once succeeded, the summary and report links."""
    return _info(await _visible_run(state, evaluation_id, principal))


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
    principal: Principal = Depends(require("read")),
) -> FileResponse:
    """The complete JSON report, the Markdown summary or the self-contained HTML page (409 until succeeded)."""
    await _visible_run(state, evaluation_id, principal)
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
    principal: Principal = Depends(require("write")),
) -> EvaluationInfo:
    """A queued run is cancelled at once, a running one at its next step (poll until ``cancelled``)."""
    _check_may_change(await _visible_run(state, evaluation_id, principal), principal)
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
    principal: Principal = Depends(require("write")),
) -> Response:
    """Remove a finished run and its reports (409 while it is queued or running: cancel it first)."""
    _check_may_change(await _visible_run(state, evaluation_id, principal), principal)
    await state.run(state.evaluations.delete, evaluation_id)
    return Response(status_code=204)
