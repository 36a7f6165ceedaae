"""Evaluation runs in the background: one at a time, on one worker thread, with their reports on disk.

``POST /v1/evaluations`` hands a checked :class:`~ragkit.evaluation.Suite` to
:meth:`EvaluationManager.submit`; the run waits in a first-in, first-out queue
(an evaluation keeps the CPU busy, so two at once would only make both slower)
and then runs :func:`~ragkit.evaluation.run_suite` and
:func:`~ragkit.evaluation.write_reports` into ``{root}/{id}/``. The documents
are ingested into a store shared by all runs (``{root}/.eval-store``), so a
second run over the same folder reuses the collection.

Every change of state is also written to ``{root}/{id}/evaluation.json``, so a
finished run (its status, summary and reports) is still there after a
restart; a run that was queued or running when the service stopped is shown
as ``failed`` with that reason. A cancel stops a queued run at once and a
running one at its next step (after the ingest, between batches of
questions or judge calls).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ragkit.errors import ConflictError, NotFoundError, RagkitError
from ragkit.evaluation.suite import Suite

log = logging.getLogger("ragkit.service")

EvaluationStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ReportFormat = Literal["json", "markdown", "html"]

REPORT_FILES: dict[str, str] = {"json": "report.json", "markdown": "report.md", "html": "report.html"}
"""The file of each report format inside a run's folder (as :func:`~ragkit.evaluation.write_reports` names them)."""

STATE_FILE = "evaluation.json"
_ID = re.compile(r"^eval_[0-9a-f]{32}$")
_FINISHED = ("succeeded", "failed", "cancelled")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Evaluation:
    """One evaluation run: what was asked, where it stands, and (once done) its summary."""

    id: str
    suite: str
    """The suite file on the server, or ``inline``."""
    suite_name: str
    folder: Path
    sample: int | None = None
    pipelines: list[str] | None = None
    requested_by: str | None = None
    status: EvaluationStatus = "queued"
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: dict[str, Any] = field(default_factory=lambda: {"stage": "queued", "done": 0, "total": 0, "errors": 0})
    summary: dict[str, Any] | None = None
    """The JSON report without its samples and chunks (config, versions, per-pipeline aggregates)."""
    error: dict[str, str] | None = None
    loaded: Suite | None = field(default=None, repr=False)
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        """Whether the run has ended (succeeded, failed or cancelled)."""
        return self.status in _FINISHED

    def to_dict(self) -> dict[str, Any]:
        """The run as the API shows it (and as ``evaluation.json`` keeps it)."""
        reports = (
            {fmt: f"/v1/evaluations/{self.id}/report?format={fmt}" for fmt in REPORT_FILES}
            if self.status == "succeeded"
            else {}
        )
        return {
            "id": self.id,
            "suite": self.suite,
            "suite_name": self.suite_name,
            "sample": self.sample,
            "pipelines": self.pipelines,
            "requested_by": self.requested_by,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "progress": dict(self.progress),
            "summary": self.summary,
            "error": self.error,
            "reports": reports,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: Path) -> Evaluation:
        """A run read back from its ``evaluation.json``."""

        def when(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        run = cls(
            id=data["id"],
            suite=data["suite"],
            suite_name=data["suite_name"],
            folder=folder,
            sample=data.get("sample"),
            pipelines=data.get("pipelines"),
            requested_by=data.get("requested_by"),
            status=data["status"],
            created_at=when(data["created_at"]) or _now(),
            started_at=when(data.get("started_at")),
            finished_at=when(data.get("finished_at")),
            progress=data.get("progress") or {},
            summary=data.get("summary"),
            error=data.get("error"),
        )
        if not run.finished:  # the service stopped while it was queued or running
            run.status = "failed"
            run.error = {"type": "Interrupted", "message": "the service stopped before the evaluation finished"}
        return run


class EvaluationManager:
    """The evaluation queue, its worker thread and the runs' folders; see the module docstring."""

    def __init__(
        self,
        root: Path,
        max_kept: int = 100,
        on_finish: Callable[[Evaluation], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_kept = max_kept
        self.on_finish = on_finish
        self._runs: OrderedDict[str, Evaluation] = OrderedDict()
        self._queue: deque[Evaluation] = deque()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closing = False

    @property
    def store_dir(self) -> Path:
        """Where the suites' documents are ingested (shared by runs, so ingest is reused)."""
        return self.root / ".eval-store"

    # -- submitting and reading ----------------------------------------------------------------

    def submit(
        self,
        suite: Suite,
        sample: int | None = None,
        pipelines: list[str] | None = None,
        requested_by: str | None = None,
    ) -> Evaluation:
        """Queue a run of ``suite`` (already checked); returns it, ``queued``."""
        if self._closing:
            raise RuntimeError("the evaluation queue is shut down")
        run_id = f"eval_{uuid.uuid4().hex}"
        run = Evaluation(
            id=run_id,
            suite=suite.source,
            suite_name=suite.name,
            folder=self.root / run_id,
            sample=sample if sample is not None else suite.sample,
            pipelines=pipelines or [p.name for p in suite.pipelines],
            requested_by=requested_by,
            loaded=suite,
        )
        run.folder.mkdir(parents=True, exist_ok=False)
        self._save(run)
        with self._lock:
            if self._closing:
                raise RuntimeError("the evaluation queue is shut down")
            self._runs[run.id] = run
            self._queue.append(run)
            self._prune()
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="ragkit-evaluations", daemon=True)
                self._worker.start()
        return run

    def get(self, run_id: str) -> Evaluation:
        """The run ``run_id``, from memory or from its folder (:class:`NotFoundError` if unknown)."""
        if not _ID.match(run_id):
            raise NotFoundError(f"no evaluation {run_id!r}")
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None:
            return run
        run = self._read(self.root / run_id)
        if run is None:
            raise NotFoundError(f"no evaluation {run_id!r}")
        return run

    def runs(self) -> list[Evaluation]:
        """Every known run, newest first: those of this process and those found on disk."""
        with self._lock:
            known = dict(self._runs)
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.name not in known and _ID.match(folder.name):
                    run = self._read(folder)
                    if run is not None:
                        known[run.id] = run
        return sorted(known.values(), key=lambda r: r.created_at, reverse=True)

    def report_file(self, run_id: str, fmt: ReportFormat) -> Path:
        """The report file of a succeeded run (:class:`ConflictError` while it is not done)."""
        run = self.get(run_id)
        if run.status != "succeeded":
            raise ConflictError(f"evaluation {run_id} has no report: it is {run.status}")
        path = run.folder / REPORT_FILES[fmt]
        if not path.is_file():
            raise NotFoundError(f"the {fmt} report of evaluation {run_id} is missing from {run.folder}")
        return path

    def cancel(self, run_id: str) -> Evaluation:
        """Cancel a queued run at once, a running one at its next step; a finished one is a 409."""
        run = self.get(run_id)
        with self._lock:
            if run.finished:
                raise ConflictError(f"evaluation {run_id} has already {run.status}")
            run.cancel_requested.set()
            queued = run.status == "queued" and run in self._queue
            if queued:
                self._queue.remove(run)
        if queued:
            self._finish(run, "cancelled", error={"type": "Cancelled", "message": "cancelled before it started"})
        return run

    def delete(self, run_id: str) -> None:
        """Remove a finished run and its reports (:class:`ConflictError` while it is queued or running)."""
        run = self.get(run_id)
        if not run.finished:
            raise ConflictError(f"evaluation {run_id} is {run.status}: cancel it first")
        with self._lock:
            self._runs.pop(run_id, None)
        shutil.rmtree(run.folder, ignore_errors=True)

    # -- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._worker = None
                    self._idle.notify_all()
                    return
                run = self._queue.popleft()
                run.status = "running"
                run.started_at = _now()
                run.progress = {"stage": "starting", "done": 0, "total": 0, "errors": 0}
            self._save(run)
            self._run(run)

    def _run(self, run: Evaluation) -> None:
        from ragkit.evaluation.report import write_reports
        from ragkit.evaluation.runner import EvaluationCancelled, run_suite

        def progress(stage: str, done: int, total: int, errors: int) -> None:
            run.progress = {"stage": stage, "done": done, "total": total, "errors": errors}
            # the ingest is left to finish: the store it fills is shared by later runs
            if run.cancel_requested.is_set() and not stage.startswith("ingest"):
                raise EvaluationCancelled

        assert run.loaded is not None
        try:
            result = run_suite(
                run.loaded, store_dir=self.store_dir, sample=run.sample, pipelines=run.pipelines, progress=progress
            )
            if run.cancel_requested.is_set():
                raise EvaluationCancelled
            run.progress = {**run.progress, "stage": "writing reports"}
            data = result.to_dict()
            write_reports(data, run.folder)
        except EvaluationCancelled:
            self._finish(run, "cancelled", error={"type": "Cancelled", "message": "cancelled while running"})
        except RagkitError as exc:
            self._finish(run, "failed", error={"type": type(exc).__name__, "message": str(exc)})
        except Exception as exc:
            log.exception("evaluation %s of %s failed", run.id, run.suite)
            self._finish(run, "failed", error={"type": type(exc).__name__, "message": str(exc)})
        else:
            run.summary = {k: v for k, v in data.items() if k not in ("samples", "chunks")}
            self._finish(run, "succeeded")

    def _finish(self, run: Evaluation, status: EvaluationStatus, error: dict[str, str] | None = None) -> None:
        run.error = error
        run.finished_at = _now()
        run.status = status
        run.progress = {**run.progress, "stage": status}
        run.loaded = None  # the suite (and its questions) are no longer needed
        self._save(run)
        if self.on_finish is not None:
            try:
                self.on_finish(run)
            except Exception:
                log.exception("evaluation callback failed for %s", run.id)

    # -- persistence -----------------------------------------------------------------------------

    def _save(self, run: Evaluation) -> None:
        """Write ``evaluation.json`` atomically (a reader never sees half a file)."""
        target = run.folder / STATE_FILE
        temporary = target.with_suffix(".json.tmp")
        try:
            temporary.write_text(json.dumps(run.to_dict(), indent=1), encoding="utf-8")
            os.replace(temporary, target)
        except OSError as exc:
            log.warning("could not record evaluation %s in %s: %s", run.id, target, exc)

    @staticmethod
    def _read(folder: Path) -> Evaluation | None:
        try:
            data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
            return Evaluation.from_dict(data, folder)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _prune(self) -> None:
        """Forget the oldest finished runs beyond ``max_kept`` (their folders stay on disk)."""
        finished = [r.id for r in self._runs.values() if r.finished]
        for run_id in finished[: max(0, len(finished) - self.max_kept)]:
            del self._runs[run_id]

    # -- shutdown --------------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Cancel queued and running runs and wait (up to ``timeout`` s) for the worker to stop."""
        with self._lock:
            self._closing = True
            pending = list(self._queue)
            self._queue.clear()
            running = [r for r in self._runs.values() if r.status == "running"]
        for run in pending:
            self._finish(run, "cancelled", error={"type": "Cancelled", "message": "the service shut down"})
        for run in running:
            run.cancel_requested.set()
        with self._lock:
            self._idle.wait_for(lambda: self._worker is None, timeout=timeout)
