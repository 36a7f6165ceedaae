"""Background ingest jobs: tasks in their collection's lane of the service's :class:`~ragkit.service.tasks.TaskQueue`.

An upload or an ingest-by-path answers 202 with a job; the job waits in its
collection's lane (``ingest:{collection}``) and runs on that lane's worker
thread, so two ingests into one collection never overlap (no
:class:`~ragkit.errors.ConflictError` from the collection's writer lock),
while different collections ingest in parallel. Other writes to a collection
(deleting a document, deleting the collection) go through the same lane with
:meth:`JobManager.run_exclusive`.

A job ``succeeded`` when the ingest ran, even if some files failed (those are
listed in ``errors``, e.g. a corrupt PDF); it ``failed`` when the ingest itself
could not run (the store is not writable ...); it is ``cancelled`` when it was
cancelled before its ingest started (its collection was deleted). An ingest
that has started is not interrupted (a half-written store would need repair),
so a cancel that comes later leaves it to finish. A reindex job (``kind:
reindex``) runs in the same lane and can be cancelled while it runs: it builds
a new generation beside the collection, so stopping it between files just
removes that (see :mod:`ragkit.collection.reindex`).

Jobs are durable (with a :class:`~ragkit.service.job_store.JobStore`): each
record is written at submit, at start, as files are done and at the end, so
``GET /v1/jobs/{id}`` answers the same after a restart. A job still queued
when the service shuts down cleanly stays queued on disk (its uploaded files
kept) instead of being cancelled; what happens at the next start to jobs that
were queued or running (resumed, or ``interrupted`` with the files not
ingested) is :func:`ragkit.service.job_recovery.recover`'s business.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast, get_args

from ragkit.errors import ConflictError, NotFoundError
from ragkit.ingest import FileIssue, IngestReport, ProgressCallback
from ragkit.service.job_store import JobStore
from ragkit.service.tasks import Task, TaskQueue, TaskStatus, now

if TYPE_CHECKING:
    from ragkit.service.stores import CollectionCache
    from ragkit.service.uploads import StagedFile

log = logging.getLogger("ragkit.service")

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
"""A task's statuses, and ``interrupted``: the service stopped while the job was queued or running and
did not resume it (see :mod:`ragkit.service.job_recovery`)."""
JobKind = Literal["upload", "path", "reindex"]
PROGRESS_EVERY = 1.0
"""Seconds between two progress writes of a running job's record."""


def ingest_lane(collection: str) -> str:
    """The lane of ``collection``'s ingest jobs and writes."""
    return f"ingest:{collection}"


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(eq=False, kw_only=True)
class Job(Task):
    """One ingest into one collection."""

    family: ClassVar[str] = "job"

    collection: str
    kind: JobKind
    sources: list[str]
    """The uploaded file names, or the ingested path."""
    report: IngestReport | None = None
    reindex: dict[str, Any] | None = None
    """A reindex job's :class:`~ragkit.collection.ReindexReport` (as a dict) once it swapped."""
    cleanup: Callable[[], None] | None = field(default=None, repr=False)
    """Called once when the job ends, whatever happened (e.g. removes staged files)."""
    spec: dict[str, Any] = field(default_factory=dict, repr=False)
    """What the job needs to run again after a restart (kept in its record, never shown): an upload's
    ``staging`` folder, ``files`` and ``prefix``; a path job's ``path``, ``sync`` and ``prefix``."""
    progress: dict[str, int] | None = None
    """``{files_done, files_total}`` while the ingest runs (and as it ended)."""
    resumed: int = 0
    """How many times a restart of the service resumed this job."""
    resumed_at: datetime | None = None
    interrupted: bool = False
    """The service stopped while the job was queued or running and did not resume it."""
    not_ingested: list[str] | None = None
    """An interrupted job's files that are not in the collection (by the names in ``sources``)."""
    stored_report: dict[str, Any] | None = field(default=None, repr=False)
    """The report of a job read back from its record."""

    @property
    def state(self) -> JobStatus:
        """The status the API shows: the task's, or ``interrupted``."""
        return "interrupted" if self.interrupted else self.status

    def release(self) -> None:
        """Run :attr:`cleanup` once (idempotent)."""
        cleanup, self.cleanup = self.cleanup, None
        if cleanup is not None:
            try:
                cleanup()
            except Exception:
                log.exception("cleaning up after job %s failed", self.id)

    def to_dict(self) -> dict[str, Any]:
        """The job as the API shows it."""
        report = self.report.to_dict() if self.report is not None else self.stored_report
        return {
            "id": self.id,
            "collection": self.collection,
            "kind": self.kind,
            "status": self.state,
            "sources": list(self.sources),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "counts": None
            if report is None
            else {
                "added": report["added"],
                "updated": report["updated"],
                "unchanged": report["unchanged"],
                "deleted": report["deleted"],
                "failed": len(report["failed"]),
                "skipped": len(report["skipped"]),
                "chunks_written": report["chunks_written"],
                "chunks_embedded": report["chunks_embedded"],
                "chunks_deleted": report["chunks_deleted"],
            },
            "errors": [] if report is None else report["failed"],
            "skipped": [] if report is None else report["skipped"],
            "report": report,
            "error": self.error,
            "reindex": self.reindex,
            "progress": dict(self.progress) if self.progress is not None else None,
            "resumed": self.resumed,
            "resumed_at": self.resumed_at,
            "not_ingested": list(self.not_ingested) if self.not_ingested is not None else None,
        }

    def record(self) -> dict[str, Any]:
        """The job as its record on disk keeps it: :meth:`to_dict` with ISO times, plus its ``spec``."""
        data = self.to_dict()
        for key in ("created_at", "started_at", "finished_at", "resumed_at"):
            value = data[key]
            data[key] = value.isoformat() if isinstance(value, datetime) else None
        data["spec"] = self.spec
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Job:
        """A job read back from its record (a queued or running one keeps that status: recovery decides)."""
        status, kind = data.get("status"), data.get("kind")
        if status not in get_args(JobStatus) or kind not in get_args(JobKind):
            raise ValueError(f"job record {data.get('id')!r} has status {status!r} and kind {kind!r}")
        job = cls(
            id=str(data["id"]),
            lane=ingest_lane(str(data["collection"])),
            collection=str(data["collection"]),
            kind=cast(JobKind, kind),
            sources=[str(s) for s in data.get("sources") or []],
            status="cancelled" if status == "interrupted" else cast(TaskStatus, status),
            created_at=_when(data.get("created_at")) or now(),
            started_at=_when(data.get("started_at")),
            finished_at=_when(data.get("finished_at")),
            error=data.get("error"),
            reindex=data.get("reindex"),
            spec=data.get("spec") or {},
            progress=data.get("progress"),
            resumed=int(data.get("resumed") or 0),
            resumed_at=_when(data.get("resumed_at")),
            interrupted=status == "interrupted",
            not_ingested=data.get("not_ingested"),
            stored_report=data.get("report"),
        )
        return job


class JobManager:
    """The ingest jobs of the service's task queue, and (with a ``store``) their records; see the module docstring."""

    def __init__(
        self,
        queue: TaskQueue,
        on_finish: Callable[[Job], None] | None = None,
        store: JobStore | None = None,
        collections: CollectionCache | None = None,
        max_kept: int = 1000,
        max_age_days: float | None = None,
    ) -> None:
        self.queue = queue
        self.on_finish = on_finish
        self.store = store
        self.collections = collections
        self.max_kept = max_kept
        self.max_age_days = max_age_days
        self._suspending = False
        self._finished_since_prune = 0

    # -- submitting --------------------------------------------------------------------------

    def submit(
        self,
        collection: str,
        kind: JobKind,
        sources: list[str],
        work: Callable[[Job], IngestReport],
        cleanup: Callable[[], None] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> Job:
        """Queue ``work`` for ``collection``; returns the queued job (recorded before it is queued)."""
        job = Job(
            id=f"job_{uuid.uuid4().hex}",
            lane=ingest_lane(collection),
            collection=collection,
            kind=kind,
            sources=sources,
            cleanup=cleanup,
            spec=dict(spec or {}),
        )
        return self.enqueue(job, work)

    def enqueue(self, job: Job, work: Callable[[Job], IngestReport]) -> Job:
        """Record ``job`` and queue it (a new job, or one a restart resumes)."""

        def run(job: Job) -> None:
            self.save(job)  # running
            try:
                job.report = work(job)
            finally:
                job.release()  # before the job shows as finished

        self.save(job)
        return self.queue.submit(job, run, on_finish=self._finished)

    def submit_upload(self, collection: str, staging: Path, files: list[StagedFile], prefix: str) -> Job:
        """Queue the ingest of files staged in ``staging`` (moved into the collection's documents when it runs)."""
        spec = {"staging": str(staging), "files": [{"name": f.name, "size": f.size} for f in files], "prefix": prefix}
        job = Job(
            id=f"job_{uuid.uuid4().hex}",
            lane=ingest_lane(collection),
            collection=collection,
            kind="upload",
            sources=[f.name for f in files],
            cleanup=lambda: shutil.rmtree(staging, ignore_errors=True),
            spec=spec,
        )
        return self.enqueue(job, self.upload_work)

    def submit_path(self, collection: str, path: Path, sync: bool, prefix: str) -> Job:
        """Queue the ingest of ``path`` (a file or folder on the server, already checked)."""
        spec = {"path": str(path), "sync": sync, "prefix": prefix}
        return self.submit(collection, "path", [str(path)], self.path_work, spec=spec)

    # -- the work of uploads and paths (the same for a new job and a resumed one) ------------

    def _cache(self) -> CollectionCache:
        if self.collections is None:
            raise RuntimeError("this job manager has no collections to ingest into")
        return self.collections

    def upload_work(self, job: Job) -> IngestReport:
        """Move the job's staged files into the collection's documents and ingest them.

        A resumed job finds some files already moved (and maybe ingested: those are unchanged now);
        ``spec["created"]`` lists the copies this job added, removed again if the ingest is refused.
        """
        cache = self._cache()
        collection = cache.get(job.collection)
        prefix = str(job.spec.get("prefix") or "")
        staging = Path(job.spec["staging"])
        folder = cache.documents_dir(job.collection) / prefix
        folder.mkdir(parents=True, exist_ok=True)
        names = [str(f["name"]) for f in job.spec.get("files", [])]
        created = set(job.spec.get("created", []))
        created.update(n for n in names if (staging / n).exists() and not (folder / n).exists())
        if created != set(job.spec.get("created", [])):
            job.spec["created"] = sorted(created)
            self.save(job)  # before the first move: a crash after it still knows which copies are the job's
        targets, missing = [], []
        for name in names:
            if (staging / name).exists():
                os.replace(staging / name, folder / name)  # atomic: same file system
            if (folder / name).exists():
                targets.append(folder / name)
            else:
                missing.append(name)
        try:
            # the source id is the upload name (after the prefix); the server's path is nobody's business
            report = collection.ingest(
                targets, source_prefix=prefix, record_uri=False, progress=self._progress(job, len(names))
            )
        except ConflictError:
            for name in created:  # refused: keep no copy of a file that is not in the collection
                (folder / name).unlink(missing_ok=True)
            raise
        lost = "its uploaded file was lost before it was ingested"
        report.failed.extend(FileIssue(prefix + name, lost) for name in missing)
        return report

    def path_work(self, job: Job) -> IngestReport:
        """Ingest the job's server path (incremental: a resumed job skips what is already in)."""
        spec = job.spec
        collection = self._cache().get(job.collection)
        return collection.ingest(
            [Path(spec["path"])],
            sync=bool(spec.get("sync")),
            source_prefix=str(spec.get("prefix") or ""),
            progress=self._progress(job, 0),
        )

    def _progress(self, job: Job, total: int) -> ProgressCallback:
        """A progress callback that keeps ``job.progress`` and writes the record at most every second."""
        job.progress = {"files_done": 0, "files_total": total}
        last = [time.monotonic()]

        def progress(stage: str, done: int, count: int) -> None:
            if stage != "files":
                return
            job.progress = {"files_done": done, "files_total": count}
            if done == count or time.monotonic() - last[0] >= PROGRESS_EVERY:
                last[0] = time.monotonic()
                self.save(job)

        return progress

    # -- the end of a job ----------------------------------------------------------------------

    def _finished(self, job: Job) -> None:
        if self._suspending and job.status == "cancelled" and job.started_at is None and job.kind != "reindex":
            # the service is shutting down: the job stays queued on disk, with its files, for the next start
            log.info("job %s stays queued for the next start of the service", job.id)
            return
        job.release()  # a job cancelled before it ran
        self.save(job)
        if self.on_finish is not None:
            self.on_finish(job)
        self._finished_since_prune += 1
        if self._finished_since_prune >= 25:
            self._finished_since_prune = 0
            self.prune()

    def suspend(self) -> None:
        """The service is shutting down: jobs cancelled from now on because of it stay queued on disk."""
        self._suspending = True

    def save(self, job: Job) -> None:
        """Write ``job``'s record (nothing without a store)."""
        if self.store is not None:
            self.store.save(job.record())

    def prune(self) -> int:
        """Drop finished records beyond the retention settings; returns how many."""
        if self.store is None:
            return 0
        return self.store.prune(self.max_kept, self.max_age_days)

    # -- reading and cancelling ----------------------------------------------------------------

    def run_exclusive(self, collection: str, action: Callable[[], Any]) -> Future[Any]:
        """Run ``action`` in ``collection``'s lane, after the jobs queued before it."""
        return self.queue.run_exclusive(ingest_lane(collection), action)

    def get(self, job_id: str) -> Job:
        """The job ``job_id``, from memory or its record (:class:`NotFoundError` if unknown or forgotten)."""
        job = self.queue.get(job_id)
        if isinstance(job, Job):
            return job
        data = self.store.read(job_id) if self.store is not None else None
        if data is not None:
            try:
                return Job.from_record(data)
            except (KeyError, TypeError, ValueError):
                log.warning("the record of job %s is unreadable", job_id)
        if self.store is None:
            kept = self.queue.max_kept.get(Job.family, self.queue.default_kept)
            raise NotFoundError(f"no job {job_id!r} (jobs are kept in memory, the latest {kept} finished)")
        age = f", for {self.max_age_days:g} days" if self.max_age_days is not None else ""
        raise NotFoundError(f"no job {job_id!r} (finished jobs are kept: the latest {self.max_kept}{age})")

    def find(self, collection: str | None = None, status: JobStatus | None = None) -> list[Job]:
        """Known jobs, newest first: those in memory and those recorded on disk, optionally narrowed."""
        known: dict[str, Job] = {t.id: t for t in self.queue.tasks() if isinstance(t, Job)}
        for data in self.store.records() if self.store is not None else []:
            if str(data.get("id")) not in known:
                try:
                    known[str(data["id"])] = Job.from_record(data)
                except (KeyError, TypeError, ValueError):
                    continue
        found = [
            job
            for job in known.values()
            if (collection is None or job.collection == collection) and (status is None or job.state == status)
        ]
        return sorted(found, key=lambda job: job.created_at, reverse=True)

    def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """Cancel a job: a queued one at once, a running one before its ingest starts; finished is a 409."""
        job = self.get(job_id)
        if job.interrupted:
            raise ConflictError(f"job {job.id} was interrupted by a restart of the service")
        if not job.finished and self.queue.get(job_id) is None:  # a record only: another process runs it
            raise ConflictError(f"job {job.id} is {job.status} in another service process over the same store")
        self.queue.cancel(job, reason)
        return job

    def cancel_queued(self, collection: str, reason: str) -> int:
        """Cancel the jobs of ``collection`` that have not started; returns how many."""
        return self.queue.cancel_lane(ingest_lane(collection), reason)
