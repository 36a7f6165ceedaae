"""Background ingest jobs: one queue and one worker thread per collection.

An upload or an ingest-by-path answers 202 with a job; the job waits in its
collection's queue and runs on that collection's worker thread, so two ingests
into one collection never overlap (no :class:`~ragkit.errors.ConflictError`
from the collection's writer lock), while different collections ingest in
parallel. Other writes to a collection (deleting a document, deleting the
collection) go through the same queue with :meth:`JobManager.run_exclusive`. A
worker thread exits when its queue is empty. Jobs are kept in memory (the
latest ``max_kept`` finished ones): they do not survive a restart.

A job ``succeeded`` when the ingest ran, even if some files failed (those are
listed in ``errors``, e.g. a corrupt PDF); it ``failed`` when the ingest itself
could not run (the collection was deleted, the store is not writable ...).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ragkit.errors import NotFoundError, RagkitError
from ragkit.ingest import IngestReport

log = logging.getLogger("ragkit.service")

JobStatus = Literal["queued", "running", "succeeded", "failed"]
JobKind = Literal["upload", "path"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Job:
    """One ingest into one collection."""

    id: str
    collection: str
    kind: JobKind
    sources: list[str]
    """The uploaded file names, or the ingested path."""
    work: Callable[[Job], IngestReport] = field(repr=False)
    status: JobStatus = "queued"
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    report: IngestReport | None = None
    error: dict[str, str] | None = None
    cleanup: Callable[[], None] | None = field(default=None, repr=False)
    """Called once when the job ends, whatever happened (e.g. removes staged files)."""

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
        }


@dataclass
class _Exclusive:
    action: Callable[[], Any]
    future: Future[Any]


class JobManager:
    """Per-collection job queues and their worker threads; see the module docstring."""

    def __init__(self, max_kept: int = 1000, on_finish: Callable[[Job], None] | None = None) -> None:
        self.max_kept = max_kept
        self.on_finish = on_finish
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queues: dict[str, deque[Job | _Exclusive]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closing = False

    # -- submitting ------------------------------------------------------------------------

    def submit(
        self,
        collection: str,
        kind: JobKind,
        sources: list[str],
        work: Callable[[Job], IngestReport],
        cleanup: Callable[[], None] | None = None,
    ) -> Job:
        """Queue ``work`` for ``collection``; returns the queued job."""
        job = Job(f"job_{uuid.uuid4().hex}", collection, kind, sources, work, cleanup=cleanup)
        with self._lock:
            if self._closing:
                raise RuntimeError("the job manager is shut down")
            self._jobs[job.id] = job
            self._prune()
            self._enqueue(collection, job)
        return job

    def run_exclusive(self, collection: str, action: Callable[[], Any]) -> Future[Any]:
        """Run ``action`` on ``collection``'s worker, after the jobs queued before it."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closing:
                raise RuntimeError("the job manager is shut down")
            self._enqueue(collection, _Exclusive(action, future))
        return future

    def get(self, job_id: str) -> Job:
        """The job ``job_id`` (:class:`NotFoundError` if unknown or forgotten)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} (jobs are kept in memory, the latest {self.max_kept} finished)")
        return job

    def jobs(self, collection: str | None = None) -> list[Job]:
        """Known jobs, oldest first, optionally of one collection."""
        with self._lock:
            return [j for j in self._jobs.values() if collection is None or j.collection == collection]

    def cancel_queued(self, collection: str, reason: str) -> int:
        """Fail the jobs of ``collection`` that have not started; returns how many."""
        with self._lock:
            queue = self._queues.get(collection)
            if not queue:
                return 0
            dropped = [task for task in queue if isinstance(task, Job)]
            kept = [task for task in queue if not isinstance(task, Job)]
            queue.clear()
            queue.extend(kept)
        for job in dropped:
            self._finish(job, "failed", error={"type": "Cancelled", "message": reason})
        return len(dropped)

    def active(self, collection: str) -> bool:
        """Whether ``collection`` has queued or running work."""
        with self._lock:
            return collection in self._workers

    # -- workers ---------------------------------------------------------------------------

    def _enqueue(self, collection: str, task: Job | _Exclusive) -> None:
        self._queues.setdefault(collection, deque()).append(task)
        if collection not in self._workers:
            worker = threading.Thread(
                target=self._work, args=(collection,), name=f"ragkit-jobs-{collection}", daemon=True
            )
            self._workers[collection] = worker
            worker.start()

    def _work(self, collection: str) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(collection)
                if not queue:
                    self._queues.pop(collection, None)
                    self._workers.pop(collection, None)
                    self._idle.notify_all()
                    return
                task = queue.popleft()
                if isinstance(task, Job):
                    task.status = "running"
                    task.started_at = _now()
            if isinstance(task, Job):
                self._run_job(task)
            else:
                self._run_exclusive(task)

    def _run_job(self, job: Job) -> None:
        try:
            job.report = job.work(job)
        except RagkitError as exc:
            self._finish(job, "failed", error={"type": type(exc).__name__, "message": str(exc)})
        except Exception as exc:
            log.exception("ingest job %s into %r failed", job.id, job.collection)
            self._finish(job, "failed", error={"type": type(exc).__name__, "message": str(exc)})
        else:
            self._finish(job, "succeeded")

    @staticmethod
    def _run_exclusive(task: _Exclusive) -> None:
        if not task.future.set_running_or_notify_cancel():
            return
        try:
            task.future.set_result(task.action())
        except BaseException as exc:
            task.future.set_exception(exc)

    def _finish(self, job: Job, status: JobStatus, error: dict[str, str] | None = None) -> None:
        if job.cleanup is not None:
            try:
                job.cleanup()
            except Exception:
                log.exception("cleaning up after job %s failed", job.id)
        job.error = error
        job.finished_at = _now()
        job.status = status
        if self.on_finish is not None:
            try:
                self.on_finish(job)
            except Exception:
                log.exception("job callback failed for %s", job.id)

    def _prune(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.status in ("succeeded", "failed")]
        for job_id in finished[: max(0, len(finished) - self.max_kept)]:
            del self._jobs[job_id]

    # -- shutdown --------------------------------------------------------------------------

    def close(self, timeout: float = 60.0) -> None:
        """Fail queued jobs, wait (up to ``timeout`` s) for running ones, and stop the workers."""
        with self._lock:
            self._closing = True
            pending = {name: list(queue) for name, queue in self._queues.items()}
            for queue in self._queues.values():
                queue.clear()
        for tasks in pending.values():
            for task in tasks:
                if isinstance(task, Job):
                    message = "the service shut down before the job ran"
                    self._finish(task, "failed", error={"type": "Cancelled", "message": message})
                else:
                    task.future.cancel()
        with self._lock:
            self._idle.wait_for(lambda: not self._workers, timeout=timeout)
