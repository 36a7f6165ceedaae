"""Collections, their documents, uploads, ingest by path, and jobs."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from concurrent.futures import Future
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from ragkit.collection import Collection
from ragkit.collection.components import validate_components
from ragkit.collection.reindex import reindex_collection as rebuild_collection
from ragkit.config import CollectionConfig
from ragkit.errors import InputError, NotFoundError
from ragkit.ingest import IngestReport, source_uris, uri_path
from ragkit.loaders import source_prefix
from ragkit.recipes import load_collection_config
from ragkit.service.auth import Principal, require, require_collection
from ragkit.service.errors import error_responses
from ragkit.service.jobs import Job, JobStatus
from ragkit.service.models import (
    CollectionCounts,
    CollectionInfo,
    CollectionList,
    CreateCollection,
    DocumentInfo,
    DocumentList,
    IngestPath,
    JobInfo,
    JobList,
    ReindexCollection,
)
from ragkit.service.paths import is_inside, resolve_server_path
from ragkit.service.state import ServiceState, get_state
from ragkit.service.uploads import FILE_FIELD, UploadReceiver

router = APIRouter(prefix="/v1", tags=["collections"])

_AUTH = (401, 403)


def _collection_info(collection: Collection) -> CollectionInfo:
    info = collection.info()
    stats = dict(info.get("stats", {}))
    counts = CollectionCounts(chunks=int(stats.get("chunks", 0)), sources=int(stats.get("sources", 0)))
    if "sources" not in stats:
        counts.sources = len(collection.store.sources())
    return CollectionInfo(
        name=collection.name, config=info["config"], embedding=info["embedding"], counts=counts, stats=stats
    )


@router.post(
    "/collections",
    status_code=201,
    response_model=CollectionInfo,
    responses=error_responses(400, *_AUTH, 404, 409, 413, 422, 503, 507),
    summary="Create a collection",
)
async def create_collection(
    body: CreateCollection,
    state: ServiceState = Depends(get_state),
    principal: Principal = Depends(require("admin")),
) -> CollectionInfo:
    """Create a collection from a recipe name, a config dict, or the defaults."""
    principal.check_collection(body.name)
    if body.recipe is not None and body.config is not None:
        raise InputError("give either 'recipe' or 'config', not both")

    def create() -> CollectionInfo:
        config: Any = body.config
        if body.recipe is not None:
            try:
                config = load_collection_config(body.recipe)
            except NotFoundError as exc:
                raise InputError(str(exc)) from None
        return _collection_info(state.collections.create(body.name, config))

    return await state.run(create)


@router.get(
    "/collections",
    response_model=CollectionList,
    responses=error_responses(*_AUTH),
    summary="List collections",
)
async def list_collections(
    state: ServiceState = Depends(get_state), principal: Principal = Depends(require("read"))
) -> CollectionList:
    """The collections the caller's key may see."""
    names = await state.run(state.collections.names)
    return CollectionList(collections=principal.visible(names))


@router.get(
    "/collections/{name}",
    response_model=CollectionInfo,
    responses=error_responses(400, *_AUTH, 404, 422),
    summary="Show a collection",
)
async def get_collection(
    name: str,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("read")),
) -> CollectionInfo:
    """A collection's configuration and counts (chunks, sources)."""
    return await state.run(lambda: _collection_info(state.collections.get(name)))


@router.delete(
    "/collections/{name}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, *_AUTH, 404, 422, 503),
    summary="Delete a collection",
)
async def delete_collection(
    name: str,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("admin")),
) -> Response:
    """Delete a collection, its data and its uploaded files; queued ingest jobs into it are cancelled."""
    await state.run(state.collections.get, name)  # 404 before anything is cancelled
    await state.run(state.jobs.cancel_queued, name, f"collection {name!r} was deleted")
    future = state.jobs.run_exclusive(name, lambda: state.collections.delete(name))
    await _wait(future)
    return Response(status_code=204)


async def _wait(future: Future[Any]) -> Any:
    return await asyncio.wrap_future(future)


# -- documents -------------------------------------------------------------------------------


def _document_id(source: str) -> str:
    return hashlib.blake2b(source.encode("utf-8"), digest_size=8).hexdigest()


def _upload_copy(state: ServiceState, name: str, source: str, uri: str | None) -> Path | None:
    """Where the service keeps the uploaded file of ``source``, or ``None`` when it is not an upload.

    An upload's chunks carry no ``uri``; its copy is ``documents/NAME/<source>``
    (before source ids were relative: the source itself, an absolute path in that folder).
    """
    if uri is not None:
        return None
    uploads = state.collections.documents_dir(name).resolve()
    path = Path(source) if source.startswith("/") else uploads / source
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(uploads) or resolved == uploads:
        return None
    if not source.startswith("/") or path.parent == uploads:
        return resolved
    return None


def _documents(state: ServiceState, name: str) -> list[DocumentInfo]:
    collection = state.collections.get(name)
    records = collection.store.sources()
    uris = source_uris(collection.store, list(records.values()))
    documents = []
    for source, record in sorted(records.items()):
        path = Path(source)
        uploaded = _upload_copy(state, name, source, uris.get(source)) is not None
        documents.append(
            DocumentInfo(
                id=_document_id(source),
                name=path.name if uploaded and source.startswith("/") else source,
                source=source,
                uploaded=uploaded,
                chunks=record.chunk_count,
                size=record.size,
                content_hash=record.content_hash,
                modified=record.mtime,
            )
        )
    return documents


@router.get(
    "/collections/{name}/documents",
    response_model=DocumentList,
    responses=error_responses(400, *_AUTH, 404, 422),
    summary="List a collection's documents",
    tags=["documents"],
)
async def list_documents(
    name: str,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("read")),
) -> DocumentList:
    """The ingested sources: name, chunk count, size and content hash."""
    return DocumentList(collection=name, documents=await state.run(_documents, state, name))


@router.delete(
    "/collections/{name}/documents/{document}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, *_AUTH, 404, 422),
    summary="Delete a document",
    tags=["documents"],
)
async def delete_document(
    name: str,
    document: str,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("write")),
) -> Response:
    """Delete one source's chunks (and its uploaded file), by id, uploaded file name or source."""
    documents = await state.run(_documents, state, name)
    match = next((d for d in documents if document in (d.id, d.source)), None)
    if match is None:
        match = next((d for d in documents if d.uploaded and d.name == document), None)
    if match is None:
        raise NotFoundError(f"collection {name!r} has no document {document!r} (by id, uploaded name or source)")
    target = match

    def delete() -> None:
        collection = state.collections.get(name)
        copy = _upload_copy(state, name, target.source, None) if target.uploaded else None
        collection.delete_sources([target.source])
        if copy is not None:
            copy.unlink(missing_ok=True)

    await _wait(state.jobs.run_exclusive(name, delete))
    return Response(status_code=204)


def downloadable_source(state: ServiceState, name: str, source: str) -> Path:
    """The file to send for ``source``: an upload's stored copy, or a server-side file inside the ingest roots.

    Every other case (unknown source, file gone, file outside the roots now)
    is the same :class:`NotFoundError`, so nothing about the server's files leaks.
    """
    collection = state.collections.get(name)
    record = collection.store.sources().get(source)
    missing = NotFoundError(f"collection {name!r} has no downloadable source {source!r}")
    if record is None:
        raise missing
    uri = source_uris(collection.store, [record])[source]
    path = _upload_copy(state, name, source, uri)
    if path is None:
        located = uri_path(uri) if uri is not None else Path(source) if source.startswith("/") else None
        roots = state.settings.ingest_roots
        if located is None or not roots:
            raise missing
        try:
            path = located.resolve()
        except (OSError, RuntimeError):
            raise missing from None
        if not is_inside(path, roots):
            raise missing
    if not path.is_file():
        raise missing
    return path


@router.get(
    "/collections/{name}/sources/{source:path}",
    response_class=FileResponse,
    responses={
        **error_responses(400, *_AUTH, 404, 422),
        200: {
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The document's bytes, with the content type its name suggests",
        },
    },
    summary="Download a source document",
    tags=["documents"],
)
async def download_source(
    name: str,
    source: str,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("read")),
) -> FileResponse:
    """The original bytes of one source, by its id (``hr/a.docx``), as hits and citations name it.

    An uploaded document is sent from the copy the service keeps; a document
    ingested from a server path is sent while its file still exists inside
    the ``ingest_roots``. The content type is guessed from the name, and
    ``Content-Disposition`` names the file. 404 for an unknown source, a file
    that is gone or outside the roots, and a collection the key may not read.
    """
    path = await state.run(downloadable_source, state, name, source)
    media_type = mimetypes.guess_type(PurePosixPath(source).name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, filename=PurePosixPath(source).name)


# -- ingestion -------------------------------------------------------------------------------

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "The files; the loader is chosen by each file's suffix",
                        }
                    },
                }
            }
        },
    }
}


def _accepted(job: Job) -> JSONResponse:
    body = JobInfo.model_validate(job.to_dict()).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.post(
    "/collections/{name}/documents",
    status_code=202,
    response_model=JobInfo,
    responses=error_responses(400, *_AUTH, 404, 413, 415, 422, 503, 507),
    openapi_extra=_UPLOAD_BODY,
    summary="Upload documents",
    tags=["documents"],
)
async def upload_documents(
    name: str,
    request: Request,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("write")),
) -> JSONResponse:
    """Upload files (multipart ``files`` parts); they are ingested by a background job.

    Each file is streamed to a staging folder (413 as soon as one passes
    ``max_upload_bytes``: nothing reaches the collection), then, when the job
    runs, moved into ``{store_dir}/documents/{name}/`` and ingested. A file's
    source id is its name, after the optional form field ``source_prefix``
    (``hr/`` and ``a.docx`` give ``hr/a.docx``). Uploading a name again
    replaces that document (incrementally); a name that a server-side file of
    the collection already holds fails the job with a conflict.
    """
    await state.run(state.collections.get, name)  # 404 before reading the body
    settings = state.settings
    receiver = UploadReceiver(
        request.headers.get("content-type", ""),
        state.collections.staging_dir,
        settings.max_upload_bytes,
        settings.max_upload_files,
        state.run,
        collection=name,
    )
    staged = await receiver.receive(request.stream())
    job = await state.run(state.jobs.submit_upload, name, receiver.folder, staged, receiver.source_prefix)
    state.metrics.jobs_submitted.inc()
    return _accepted(job)


@router.post(
    "/collections/{name}/ingest",
    status_code=202,
    response_model=JobInfo,
    responses=error_responses(400, *_AUTH, 404, 413, 422),
    summary="Ingest a server-side path",
    tags=["documents"],
)
async def ingest_path(
    name: str,
    body: IngestPath,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("write")),
) -> JSONResponse:
    """Ingest a file or folder on the server; it must lie inside one of the ``ingest_roots`` (else 403).

    A relative path is looked up under each ingest root in turn. Source ids
    are relative to the path (a file: its name), after ``source_prefix``.
    """
    await state.run(state.collections.get, name)
    target = await state.run(resolve_server_path, state.settings.ingest_roots, body.path)
    prefix = source_prefix(body.source_prefix)  # a bad prefix is a 400 now, not a failed job
    job = await state.run(state.jobs.submit_path, name, target, body.sync, prefix)
    state.metrics.jobs_submitted.inc()
    return _accepted(job)


@router.post(
    "/collections/{name}/reindex",
    status_code=202,
    response_model=JobInfo,
    responses=error_responses(400, *_AUTH, 404, 422),
    summary="Reindex a collection with a new configuration",
)
async def reindex_collection(
    name: str,
    body: ReindexCollection,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("admin")),
) -> JSONResponse:
    """Rebuild the collection from its sources with a new config (a background job), then swap it in atomically.

    The job waits behind the collection's other ingest jobs; while it runs the
    collection keeps answering from its current generation, and other writes
    wait. A failure or a cancel leaves the collection unchanged. Sources whose
    files are gone fail the job, listing them, unless ``drop_missing``.
    """
    if body.recipe is not None and body.config is not None:
        raise InputError("give either 'recipe' or 'config', not both")
    await state.run(state.collections.get, name)

    def parse() -> CollectionConfig:
        if body.recipe is not None:
            try:
                return load_collection_config(body.recipe)
            except NotFoundError as exc:
                raise InputError(str(exc)) from None
        return CollectionConfig.parse(body.config or {}, where="the request's config")

    def checked() -> CollectionConfig:
        config = parse()
        try:
            validate_components(config)
        except NotFoundError as exc:  # an unknown component type: the request's fault (400), not a missing resource
            raise InputError(f"config: {exc}") from None
        return config

    config = await state.run(checked)  # a bad config is a 400 now, not a failed job

    def work(job: Job) -> IngestReport:
        live = state.collections.get(name)
        report = rebuild_collection(live, config, drop_missing=body.drop_missing, checkpoint=job.checkpoint)
        job.reindex = report.to_dict()
        return report.ingest

    job = state.jobs.submit(name, "reindex", [], work)
    state.metrics.jobs_submitted.inc()
    return _accepted(job)


@router.get(
    "/jobs",
    response_model=JobList,
    responses=error_responses(*_AUTH, 422),
    summary="List ingest jobs",
    tags=["jobs"],
)
async def list_jobs(
    collection: str | None = Query(default=None, description="Only this collection's jobs"),
    status: JobStatus | None = Query(default=None, description="Only jobs with this status (e.g. interrupted)"),
    limit: int = Query(default=100, ge=1, le=1000),
    state: ServiceState = Depends(get_state),
    principal: Principal = Depends(require("read")),
) -> JobList:
    """The ingest jobs of the collections the key may read, newest first, from memory and their records on disk.

    After a restart this is where the jobs the service resumed or marked ``interrupted`` are found,
    including an upload cut off before its job was recorded (its client never got a job id).
    """
    jobs = await state.run(state.jobs.find, collection, status)
    visible = [job for job in jobs if principal.may_access(job.collection)][:limit]
    return JobList(jobs=[JobInfo.model_validate(job.to_dict()) for job in visible])


@router.get(
    "/jobs/{job_id}",
    response_model=JobInfo,
    responses=error_responses(*_AUTH, 404, 422),
    summary="Show an ingest job",
    tags=["jobs"],
)
async def get_job(
    job_id: str,
    state: ServiceState = Depends(get_state),
    principal: Principal = Depends(require("read")),
) -> JobInfo:
    """Status (queued, running, succeeded, failed, cancelled, interrupted), counts, per-file errors and timestamps.

    Jobs are recorded on disk: a finished job answers the same after a restart; one the service stopped
    while it was queued or running is resumed (``resumed`` counts it) or ``interrupted``, its files not
    ingested listed in ``not_ingested``.
    """
    return JobInfo.model_validate(_visible_job(state, principal, job_id).to_dict())


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobInfo,
    responses=error_responses(*_AUTH, 404, 409, 422),
    summary="Cancel an ingest job",
    tags=["jobs"],
)
async def cancel_job(
    job_id: str,
    state: ServiceState = Depends(get_state),
    principal: Principal = Depends(require("write")),
) -> JobInfo:
    """A queued job is cancelled at once; a running one only before its ingest starts (409 once finished)."""
    job = _visible_job(state, principal, job_id)
    state.jobs.cancel(job_id)
    return JobInfo.model_validate(job.to_dict())


def _visible_job(state: ServiceState, principal: Principal, job_id: str) -> Job:
    """Job ``job_id`` if the caller may see its collection; the same 404 as an unknown job otherwise."""
    job = state.jobs.get(job_id)
    if not principal.may_access(job.collection):
        raise NotFoundError(f"no job {job_id!r}")
    return job
