"""The service's background task queue: lanes of tasks, each lane run in order on its own worker thread.

Ingest jobs and evaluation runs are both :class:`Task` objects in one
:class:`TaskQueue`. A task waits in a *lane*: one lane per collection for its
ingest jobs (``ingest:{collection}``: two ingests into one collection never
overlap, different collections ingest in parallel) and one lane for every
evaluation (``evaluations``: an evaluation keeps the CPU busy, so two at once
would only make both slower). A lane's worker thread starts with its first
task and exits when the lane is empty.

Every task goes through the same statuses: ``queued`` → ``running`` →
``succeeded``, ``failed`` (its work raised; ``error`` says why) or
``cancelled``. *Cancelled* means one thing for every kind of task: the task
stopped before its work was done because someone asked it to (a cancel
request, its collection being deleted, the service shutting down). A queued
task is cancelled at once and never starts; a running one is cancelled at its
next *checkpoint* (:meth:`Task.checkpoint`, which its work calls between
steps), and what it did before that checkpoint stays done. A cancel that comes
after a task's last checkpoint changes nothing: the task ends as its work
ends. A finished task cannot be cancelled (:class:`~ragkit.errors.ConflictError`).

Tasks are kept in memory, the latest ``max_kept`` finished ones of each
family (``job``, ``evaluation``): they do not survive a restart unless their
owner writes them down (evaluations do).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from ragkit.errors import ConflictError, RagkitError, StorageError, storage_error, storage_error_kind

log = logging.getLogger("ragkit.service")

TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: tuple[TaskStatus, ...] = ("succeeded", "failed", "cancelled")

CANCELLED_BEFORE_START = "cancelled before it started"
CANCELLED_WHILE_RUNNING = "cancelled while running"


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class TaskCancelled(Exception):
    """Raised by :meth:`Task.checkpoint` when a cancel was requested: the task ends ``cancelled``."""


@dataclass(eq=False, kw_only=True)
class Task:
    """One unit of background work: where it waits, where it stands, and why it ended."""

    family: ClassVar[str] = "task"
    """What kind of task this is (``job``, ``evaluation``): how it is named in messages and kept."""

    id: str
    lane: str
    """The lane it waits in; tasks of one lane run one at a time, in order."""
    status: TaskStatus = "queued"
    created_at: datetime = field(default_factory=now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: dict[str, str] | None = None
    """``{type, message}`` once it failed or was cancelled."""
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)
    cancel_reason: str | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """Whether the task has ended (succeeded, failed or cancelled)."""
        return self.status in FINISHED

    def checkpoint(self) -> None:
        """Raise :class:`TaskCancelled` if a cancel was requested; work calls it between its steps."""
        if self.cancel_requested.is_set():
            raise TaskCancelled(self.cancel_reason or CANCELLED_WHILE_RUNNING)


T = TypeVar("T", bound=Task)


@dataclass(eq=False)
class _Entry(Generic[T]):
    task: T
    work: Callable[[T], None]
    on_finish: Callable[[T], None] | None


@dataclass(eq=False)
class _Exclusive:
    action: Callable[[], Any]
    future: Future[Any]


class TaskQueue:
    """Lanes of tasks and their worker threads; see the module docstring."""

    def __init__(self, max_kept: Mapping[str, int] | None = None, default_kept: int = 1000) -> None:
        self.max_kept = dict(max_kept or {})
        self.default_kept = default_kept
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._lanes: dict[str, deque[_Entry[Any] | _Exclusive]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closing = False

    # -- submitting and reading ----------------------------------------------------------------

    def submit(self, task: T, work: Callable[[T], None], on_finish: Callable[[T], None] | None = None) -> T:
        """Queue ``task`` in its lane; ``work(task)`` runs when its turn comes, ``on_finish(task)`` when it ends.

        ``work`` records its results on the task; it ends the task ``succeeded`` by returning, ``failed`` by
        raising, ``cancelled`` by letting :class:`TaskCancelled` through.
        """
        with self._lock:
            if self._closing:
                raise RuntimeError("the task queue is shut down")
            self._tasks[task.id] = task
            self._prune(task.family)
            self._enqueue(task.lane, _Entry(task, work, on_finish))
        return task

    def run_exclusive(self, lane: str, action: Callable[[], Any]) -> Future[Any]:
        """Run ``action`` on ``lane``'s worker, after the tasks queued before it (not a task: no status)."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closing:
                raise RuntimeError("the task queue is shut down")
            self._enqueue(lane, _Exclusive(action, future))
        return future

    def get(self, task_id: str) -> Task | None:
        """The task ``task_id``, or ``None`` if unknown or forgotten."""
        with self._lock:
            return self._tasks.get(task_id)

    def tasks(self, lane: str | None = None) -> list[Task]:
        """Known tasks, oldest first, optionally of one lane."""
        with self._lock:
            return [t for t in self._tasks.values() if lane is None or t.lane == lane]

    # -- cancelling ----------------------------------------------------------------------------

    def cancel(self, task: Task, reason: str | None = None) -> Task:
        """Cancel ``task``: at once if queued, at its next checkpoint if running; finished is a 409."""
        with self._lock:
            if task.finished:
                raise ConflictError(f"{task.family} {task.id} has already {task.status}")
            entry = self._unqueue(task)
            if entry is None:
                task.cancel_reason = reason
                task.cancel_requested.set()
        if entry is not None:
            self._cancelled(entry, reason or CANCELLED_BEFORE_START)
        return task

    def cancel_lane(self, lane: str, reason: str) -> int:
        """Cancel the tasks of ``lane`` that have not started; returns how many."""
        with self._lock:
            queue = self._lanes.get(lane)
            if not queue:
                return 0
            dropped = [entry for entry in queue if isinstance(entry, _Entry)]
            kept = [entry for entry in queue if not isinstance(entry, _Entry)]
            queue.clear()
            queue.extend(kept)
        for entry in dropped:
            self._cancelled(entry, reason)
        return len(dropped)

    def _unqueue(self, task: Task) -> _Entry[Any] | None:
        """Take ``task``'s entry out of its lane if it is still queued (lock held)."""
        queue = self._lanes.get(task.lane)
        for entry in queue or ():
            if isinstance(entry, _Entry) and entry.task is task:
                assert queue is not None
                queue.remove(entry)
                return entry
        return None

    def _cancelled(self, entry: _Entry[Any], reason: str) -> None:
        entry.task.cancel_requested.set()
        self._finish(entry, "cancelled", {"type": "Cancelled", "message": reason})

    # -- workers -------------------------------------------------------------------------------

    def _enqueue(self, lane: str, entry: _Entry[Any] | _Exclusive) -> None:
        self._lanes.setdefault(lane, deque()).append(entry)
        if lane not in self._workers:
            worker = threading.Thread(target=self._work, args=(lane,), name=f"ragkit-{lane}", daemon=True)
            self._workers[lane] = worker
            worker.start()

    def _work(self, lane: str) -> None:
        while True:
            with self._lock:
                queue = self._lanes.get(lane)
                if not queue:
                    self._lanes.pop(lane, None)
                    self._workers.pop(lane, None)
                    self._idle.notify_all()
                    return
                entry = queue.popleft()
                if isinstance(entry, _Entry):
                    entry.task.status = "running"
                    entry.task.started_at = now()
            if isinstance(entry, _Entry):
                self._run(entry)
            else:
                self._run_exclusive(entry)

    def _run(self, entry: _Entry[Any]) -> None:
        task = entry.task
        try:
            task.checkpoint()
            entry.work(task)
        except TaskCancelled as exc:
            self._finish(entry, "cancelled", {"type": "Cancelled", "message": str(exc)})
        except RagkitError as exc:
            if type(exc) is StorageError and storage_error_kind(exc) is not None:
                exc = storage_error(exc, str(exc))  # say a full or read-only disk by its name
            self._finish(entry, "failed", {"type": type(exc).__name__, "message": str(exc)})
        except Exception as exc:
            log.exception("%s %s in lane %r failed", task.family, task.id, task.lane)
            self._finish(entry, "failed", {"type": type(exc).__name__, "message": str(exc)})
        else:
            self._finish(entry, "succeeded", None)

    @staticmethod
    def _run_exclusive(task: _Exclusive) -> None:
        if not task.future.set_running_or_notify_cancel():
            return
        try:
            task.future.set_result(task.action())
        except BaseException as exc:
            task.future.set_exception(exc)

    @staticmethod
    def _finish(entry: _Entry[Any], status: TaskStatus, error: dict[str, str] | None) -> None:
        task = entry.task
        task.error = error
        task.finished_at = now()
        task.status = status
        if entry.on_finish is not None:
            try:
                entry.on_finish(task)
            except Exception:
                log.exception("the end of %s %s could not be recorded", task.family, task.id)

    def _prune(self, family: str) -> None:
        """Forget the oldest finished tasks of ``family`` beyond its ``max_kept`` (lock held)."""
        limit = self.max_kept.get(family, self.default_kept)
        finished = [t.id for t in self._tasks.values() if t.family == family and t.finished]
        for task_id in finished[: max(0, len(finished) - limit)]:
            del self._tasks[task_id]

    def forget(self, task_id: str) -> None:
        """Drop a task from memory (its owner deleted it)."""
        with self._lock:
            self._tasks.pop(task_id, None)

    # -- shutdown ------------------------------------------------------------------------------

    def close(self, reason: str = "the service shut down", timeout: float = 60.0) -> None:
        """Cancel every queued task, ask running ones to stop at their next checkpoint, and wait for the workers."""
        with self._lock:
            self._closing = True
            pending = [entry for queue in self._lanes.values() for entry in queue]
            for queue in self._lanes.values():
                queue.clear()
            running = [t for t in self._tasks.values() if t.status == "running"]
            for task in running:
                task.cancel_reason = reason
                task.cancel_requested.set()
        for entry in pending:
            if isinstance(entry, _Entry):
                self._cancelled(entry, reason)
            else:
                entry.future.cancel()
        with self._lock:
            self._idle.wait_for(lambda: not self._workers, timeout=timeout)
