"""Background ingest jobs: tasks in their collection's lane of the service's :class:`~ragkit.service.tasks.TaskQueue`.

An upload or an ingest-by-path answers 202 with a job; the job waits in its
collection's lane (``ingest:{collection}``) and runs on that lane's worker
thread, so two ingests into one collection never overlap (no
:class:`~ragkit.errors.ConflictError` from the collection's writer lock),
while different collections ingest in parallel. Other writes to a collection
(deleting a document, deleting the collection) go through the same lane with
:meth:`JobManager.run_exclusive`. Jobs are kept in memory: they do not survive
a restart.

A job ``succeeded`` when the ingest ran, even if some files failed (those are
listed in ``errors``, e.g. a corrupt PDF); it ``failed`` when the ingest itself
could not run (the store is not writable ...); it is ``cancelled`` when it was
cancelled before its ingest started (its collection was deleted, the service
shut down). An ingest that has started is not interrupted (a half-written
store would need repair), so a cancel that comes later leaves it to finish.
A reindex job (``kind: reindex``) runs in the same lane and can be cancelled
while it runs: it builds a new generation beside the collection, so stopping
it between files just removes that (see :mod:`ragkit.collection.reindex`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ragkit.errors import NotFoundError
from ragkit.ingest import IngestReport
from ragkit.service.tasks import Task, TaskQueue, TaskStatus

log = logging.getLogger("ragkit.service")

JobStatus = TaskStatus
JobKind = Literal["upload", "path", "reindex"]


def ingest_lane(collection: str) -> str:
    """The lane of ``collection``'s ingest jobs and writes."""
    return f"ingest:{collection}"


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
        report = self.report.to_dict() if self.report is not None else None
        return {
            "id": self.id,
            "collection": self.collection,
            "kind": self.kind,
            "status": self.status,
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
        }


class JobManager:
    """The ingest jobs of the service's task queue; see the module docstring."""

    def __init__(self, queue: TaskQueue, on_finish: Callable[[Job], None] | None = None) -> None:
        self.queue = queue
        self.on_finish = on_finish

    def submit(
        self,
        collection: str,
        kind: JobKind,
        sources: list[str],
        work: Callable[[Job], IngestReport],
        cleanup: Callable[[], None] | None = None,
    ) -> Job:
        """Queue ``work`` for ``collection``; returns the queued job."""
        job = Job(
            id=f"job_{uuid.uuid4().hex}",
            lane=ingest_lane(collection),
            collection=collection,
            kind=kind,
            sources=sources,
            cleanup=cleanup,
        )

        def run(job: Job) -> None:
            try:
                job.report = work(job)
            finally:
                job.release()  # before the job shows as finished

        return self.queue.submit(job, run, on_finish=self._finished)

    def _finished(self, job: Job) -> None:
        job.release()  # a job cancelled before it ran
        if self.on_finish is not None:
            self.on_finish(job)

    def run_exclusive(self, collection: str, action: Callable[[], Any]) -> Future[Any]:
        """Run ``action`` in ``collection``'s lane, after the jobs queued before it."""
        return self.queue.run_exclusive(ingest_lane(collection), action)

    def get(self, job_id: str) -> Job:
        """The job ``job_id`` (:class:`NotFoundError` if unknown or forgotten)."""
        job = self.queue.get(job_id)
        if not isinstance(job, Job):
            kept = self.queue.max_kept.get(Job.family, self.queue.default_kept)
            raise NotFoundError(f"no job {job_id!r} (jobs are kept in memory, the latest {kept} finished)")
        return job

    def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """Cancel a job: a queued one at once, a running one before its ingest starts; finished is a 409."""
        job = self.get(job_id)
        self.queue.cancel(job, reason)
        return job

    def cancel_queued(self, collection: str, reason: str) -> int:
        """Cancel the jobs of ``collection`` that have not started; returns how many."""
        return self.queue.cancel_lane(ingest_lane(collection), reason)
