"""What a starting service does with the ingest jobs and uploads that the last one left unfinished.

:func:`recover` runs once at the service's start, before the port opens. Each
job record still ``queued`` or ``running`` is handled by case:

- **Resumed** (queued again under the same id; ``resumed`` counts it, and
  ``resumed_at`` says when): an upload whose files are still there (staged,
  or already moved into the collection's documents), and an ingest-by-path
  whose path still exists inside the ingest roots. This is safe because an
  ingest is incremental (:mod:`ragkit.ingest`): a file already committed is
  unchanged now and skipped; a file the crash cut short is written again,
  its chunks replaced by id and committed only once complete, so nothing is
  counted twice and the collection's other documents stay searchable
  throughout.
- **Interrupted** (status ``interrupted``, ``error.type`` ``Interrupted``,
  ``not_ingested`` listing the job's files that are not in the collection):

  - a reindex: the collection is unchanged (the half-built generation is
    removed by the next reindex); submit it again;
  - a job whose collection was deleted;
  - an upload whose files are all gone; a path now missing or outside the
    ingest roots;
  - a job already resumed :data:`MAX_RESUMES` times (a job that takes the
    service down each time must not do so forever);
  - every job, when the setting ``resume_jobs`` is off.

  An interrupted upload's staged files are removed, and so are the copies it
  added to the collection's documents that were not ingested.
- **Staging folders no job refers to** are uploads the service was still
  receiving when it stopped: the client got no answer, and the files may be
  cut short. Each becomes an ``interrupted`` job record listing its files (so
  ``GET /v1/jobs/{id}`` and the log say what was lost), and its files are
  removed: the client must send them again.

Two services sharing one home would otherwise take each other's running jobs
for interrupted ones: the first to start holds a lock on the jobs folder for
its lifetime (:meth:`~ragkit.service.job_store.JobStore.claim`), and a second
one skips recovery.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import datetime
from pathlib import Path

from ragkit.ingest import file_hash
from ragkit.service.jobs import Job, JobManager, ingest_lane
from ragkit.service.paths import resolve_server_path
from ragkit.service.stores import CollectionCache
from ragkit.service.tasks import now
from ragkit.service.uploads import StagedUpload, staged_uploads

log = logging.getLogger("ragkit.service")

MAX_RESUMES = 3
"""A job resumed this many times and stopped again is marked interrupted instead."""
LOST_UPLOAD = (
    "the service stopped while it was receiving this upload, before its job was recorded: the client got no "
    "answer and nothing was ingested; the files received so far were removed (they may be cut short): "
    "upload them again"
)


def recover(manager: JobManager, roots: list[Path], resume: bool) -> list[Job]:
    """Resume or interrupt the unfinished jobs and report the orphaned uploads; returns the jobs handled."""
    store, cache = manager.store, manager.collections
    if store is None or cache is None:
        return []
    if not store.claim():
        log.warning("another service holds the jobs of %s: their recovery is left to it", store.folder)
        return []
    manager.prune()
    handled: list[Job] = []
    referenced: set[str] = set()
    resumed_staging: set[str] = set()
    for data in store.records():
        staging = (data.get("spec") or {}).get("staging")
        if isinstance(staging, str):
            referenced.add(staging)
        if data.get("status") not in ("queued", "running"):
            continue
        try:
            job = Job.from_record(data)
        except (KeyError, TypeError, ValueError):
            log.warning("the record of job %s is unreadable: it is not recovered", data.get("id"))
            continue
        reason = _why_not_resumed(job, cache, roots, resume)
        if reason is None:
            _resume(manager, job)
            if isinstance(staging, str):
                resumed_staging.add(staging)
        else:
            _interrupt(manager, cache, job, reason)
        handled.append(job)
    for upload in staged_uploads(cache.staging_dir):
        folder = str(upload.folder)
        if folder in resumed_staging:
            continue
        if folder in referenced:  # a finished job's leftovers
            shutil.rmtree(upload.folder, ignore_errors=True)
            continue
        handled.append(_lost_upload(manager, upload))
    return handled


def _why_not_resumed(job: Job, cache: CollectionCache, roots: list[Path], resume: bool) -> str | None:
    """Why ``job`` cannot be resumed, or ``None`` when it can."""
    if job.kind == "reindex":
        return (
            "the service stopped during this reindex; the collection is unchanged (the half-built generation is "
            "removed by the next reindex): submit the reindex again"
        )
    if cache.deleted(job.collection):
        return f"the service stopped before this job finished, and collection {job.collection!r} no longer exists"
    if job.resumed >= MAX_RESUMES:
        return (
            f"the service stopped while this job ran, {job.resumed + 1} times: it is not resumed again; "
            "ingest the files listed in not_ingested again once the cause is found"
        )
    if not resume:
        return "the service stopped before this job finished (resume_jobs is off): ingest the files again"
    if job.kind == "upload":
        staging = Path(job.spec.get("staging", ""))
        folder = _documents(cache, job)
        if not any((staging / name).exists() or (folder / name).exists() for name in _names(job)):
            return "the service stopped before this job finished, and its uploaded files are gone: upload them again"
        return None
    try:
        resolve_server_path(roots, str(job.spec["path"]))
    except Exception as exc:  # 403 outside the roots, 404 gone, or a record without a path
        detail = getattr(exc, "detail", None) or str(exc)
        return f"the service stopped before this job finished, and its path cannot be ingested now: {detail}"
    return None


def _resume(manager: JobManager, job: Job) -> None:
    job.status, job.started_at, job.finished_at, job.error, job.progress = "queued", None, None, None, None
    job.resumed += 1
    job.resumed_at = now()
    if job.kind == "upload":
        staging = Path(job.spec["staging"])
        job.cleanup = lambda: shutil.rmtree(staging, ignore_errors=True)
        work = manager.upload_work
    else:
        work = manager.path_work
    what = f"{len(job.sources)} uploaded files" if job.kind == "upload" else f"path {job.spec.get('path')}"
    log.warning(
        "resuming job %s into collection %r (%s): the service stopped before it finished", job.id, job.collection, what
    )
    manager.enqueue(job, work)


def _interrupt(manager: JobManager, cache: CollectionCache, job: Job, reason: str) -> None:
    job.not_ingested = _not_ingested(cache, job)
    if job.kind == "upload":
        folder = _documents(cache, job)
        for name in set(job.spec.get("created", [])) & set(job.not_ingested):
            (folder / name).unlink(missing_ok=True)  # a copy of a file that is not in the collection
        if job.spec.get("staging"):
            shutil.rmtree(job.spec["staging"], ignore_errors=True)
    job.interrupted = True
    job.status = "cancelled"
    job.finished_at = now()
    job.error = {"type": "Interrupted", "message": reason}
    manager.save(job)
    log.warning(
        "job %s into collection %r was interrupted: %s; not ingested: %s",
        job.id,
        job.collection,
        reason,
        ", ".join(job.not_ingested) or "none",
    )


def _lost_upload(manager: JobManager, upload: StagedUpload) -> Job:
    names = [f.name for f in upload.files]
    try:
        started = datetime.fromisoformat(upload.started_at) if upload.started_at else None
    except ValueError:
        started = None
    collection = upload.collection or ""
    job = Job(
        id=f"job_{uuid.uuid4().hex}",
        lane=ingest_lane(collection),
        collection=collection,
        kind="upload",
        sources=names,
        status="cancelled",
        created_at=started or now(),
        finished_at=now(),
        error={"type": "Interrupted", "message": LOST_UPLOAD},
        interrupted=True,
        not_ingested=names,
        spec={"staging": str(upload.folder), "files": [{"name": f.name, "size": f.size} for f in upload.files]},
    )
    shutil.rmtree(upload.folder, ignore_errors=True)
    manager.save(job)
    log.warning(
        "an upload into collection %r was cut off by the last stop of the service (recorded as job %s); "
        "removed its partial files: %s",
        collection or "(unknown)",
        job.id,
        ", ".join(f"{f.name} ({f.size} bytes)" for f in upload.files) or "none",
    )
    return job


def _names(job: Job) -> list[str]:
    return [str(f["name"]) for f in job.spec.get("files", [])] or list(job.sources)


def _documents(cache: CollectionCache, job: Job) -> Path:
    return cache.documents_dir(job.collection) / str(job.spec.get("prefix") or "")


def _not_ingested(cache: CollectionCache, job: Job) -> list[str]:
    """The job's files that the collection does not hold as they are (all of them when that cannot be told)."""
    if job.kind == "reindex":
        return []
    if job.kind == "path":
        return list(job.sources)  # which files of a folder made it is for the next (incremental) ingest to find
    names = _names(job)
    try:
        known = cache.get(job.collection).store.sources()
    except Exception:
        return names
    prefix = str(job.spec.get("prefix") or "")
    folder = _documents(cache, job)
    missing = []
    for name in names:
        record = known.get(prefix + name)
        copy = folder / name
        try:
            stat = copy.stat()
            same = record is not None and (
                (record.size, record.mtime) == (stat.st_size, stat.st_mtime) or record.content_hash == file_hash(copy)
            )
        except OSError:
            same = False
        if not same:
            missing.append(name)
    return missing
