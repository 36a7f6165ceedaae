"""Evaluation runs in the background: tasks in the ``evaluations`` lane of the service's task queue.

``POST /v1/evaluations`` hands a checked :class:`~ragkit.evaluation.Suite` to
:meth:`EvaluationManager.submit`; the run waits in the one evaluation lane of
the :class:`~ragkit.service.tasks.TaskQueue` (an evaluation keeps the CPU busy,
so two at once would only make both slower; ingest jobs run in their own
lanes beside it) and then runs :func:`~ragkit.evaluation.run_suite` and
:func:`~ragkit.evaluation.write_reports` into ``{root}/{id}/``. The documents
are ingested into a store shared by all runs (``{root}/.eval-store``), so a
second run over the same folder reuses the collection.

Every change of state is also written to ``{root}/{id}/evaluation.json``, so a
finished run (its status, summary and reports) is still there after a
restart; a run that was queued or running when the service stopped is shown
as ``failed`` with that reason. A cancel means what it means for every task:
a queued run is cancelled at once, a running one at its next checkpoint
(after the ingest, between batches of questions or judge calls, before the
reports are written).

A run belongs to the key that started it (``owner``) and to the collections
it reads (``collections``: the suite's eval collection); the routes show a
run only to keys that may read all of those collections.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from ragkit.errors import ConflictError, NotFoundError
from ragkit.evaluation.report_data import REPORT_FILES
from ragkit.evaluation.suite import Suite
from ragkit.service.tasks import Task, TaskCancelled, TaskQueue, TaskStatus, now

log = logging.getLogger("ragkit.service")

EvaluationStatus = TaskStatus
ReportFormat = Literal["json", "markdown", "html"]


STATE_FILE = "evaluation.json"
_ID = re.compile(r"^eval_[0-9a-f]{32}$")
LANE = "evaluations"
"""The one lane every evaluation run waits in."""


@dataclass(eq=False, kw_only=True)
class Evaluation(Task):
    """One evaluation run: what was asked, where it stands, and (once done) its summary."""

    family: ClassVar[str] = "evaluation"

    lane: str = LANE
    suite: str
    """The suite file on the server, or ``inline``."""
    suite_name: str
    folder: Path
    sample: int | None = None
    pipelines: list[str] | None = None
    requested_by: str | None = None
    owner: str | None = None
    """The name of the API key that started the run (it may cancel and delete it)."""
    collections: list[str] | None = None
    """The collections the run reads (its suite's eval collection); ``None`` for a run recorded before
    runs kept them: only keys without a collection limit see such a run."""
    progress: dict[str, Any] = field(default_factory=lambda: {"stage": "queued", "done": 0, "total": 0, "errors": 0})
    summary: dict[str, Any] | None = None
    """The JSON report without its samples and chunks (config, versions, per-pipeline aggregates)."""
    loaded: Suite | None = field(default=None, repr=False)

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
            "owner": self.owner,
            "collections": list(self.collections) if self.collections is not None else None,
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
            owner=data.get("owner", data.get("requested_by")),
            collections=_names(data.get("collections")),
            status=data["status"],
            created_at=when(data["created_at"]) or now(),
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


def _names(value: Any) -> list[str] | None:
    """The ``collections`` of a stored run: a list of names, or ``None`` when missing or malformed."""
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return list(value)
    return None


class EvaluationManager:
    """The evaluation runs of the service's task queue and their folders; see the module docstring."""

    def __init__(
        self,
        root: Path,
        queue: TaskQueue | None = None,
        on_finish: Callable[[Evaluation], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.queue = queue if queue is not None else TaskQueue()
        self.on_finish = on_finish

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
        collections: list[str] | None = None,
    ) -> Evaluation:
        """Queue a run of ``suite`` (already checked); returns it, ``queued``.

        ``requested_by`` (the key's name) becomes the run's owner; ``collections`` are the collections
        it reads (default: the suite's eval collection).
        """
        run_id = f"eval_{uuid.uuid4().hex}"
        run = Evaluation(
            id=run_id,
            suite=suite.source,
            suite_name=suite.name,
            folder=self.root / run_id,
            sample=sample if sample is not None else suite.sample,
            pipelines=pipelines or [p.name for p in suite.pipelines],
            requested_by=requested_by,
            owner=requested_by,
            collections=list(collections) if collections is not None else [suite.collection_name()],
            loaded=suite,
        )
        run.folder.mkdir(parents=True, exist_ok=False)
        self._save(run)
        return self.queue.submit(run, self._run, on_finish=self._finished)

    def get(self, run_id: str) -> Evaluation:
        """The run ``run_id``, from memory or from its folder (:class:`NotFoundError` if unknown)."""
        if not _ID.fullmatch(run_id):
            raise NotFoundError(f"no evaluation {run_id!r}")
        run = self.queue.get(run_id)
        if isinstance(run, Evaluation):
            return run
        found = self._read(self.root / run_id)
        if found is None:
            raise NotFoundError(f"no evaluation {run_id!r}")
        return found

    def runs(self) -> list[Evaluation]:
        """Every known run, newest first: those of this process and those found on disk."""
        known = {task.id: task for task in self.queue.tasks(LANE) if isinstance(task, Evaluation)}
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.name not in known and _ID.fullmatch(folder.name):
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
        """Cancel a queued run at once, a running one at its next checkpoint; a finished one is a 409."""
        run = self.get(run_id)
        self.queue.cancel(run)
        return run

    def delete(self, run_id: str) -> None:
        """Remove a finished run and its reports (:class:`ConflictError` while it is queued or running)."""
        run = self.get(run_id)
        if not run.finished:
            raise ConflictError(f"evaluation {run_id} is {run.status}: cancel it first")
        self.queue.forget(run_id)
        shutil.rmtree(run.folder, ignore_errors=True)

    # -- the work --------------------------------------------------------------------------------

    def _run(self, run: Evaluation) -> None:
        from ragkit.evaluation.report import write_reports
        from ragkit.evaluation.runner import EvaluationCancelled, run_suite

        run.progress = {"stage": "starting", "done": 0, "total": 0, "errors": 0}
        self._save(run)

        def progress(stage: str, done: int, total: int, errors: int) -> None:
            run.progress = {"stage": stage, "done": done, "total": total, "errors": errors}
            # the ingest is left to finish: the store it fills is shared by later runs
            if run.cancel_requested.is_set() and not stage.startswith("ingest"):
                raise EvaluationCancelled  # a BaseException: the runner's per-question handling lets it through

        assert run.loaded is not None
        try:
            result = run_suite(
                run.loaded, store_dir=self.store_dir, sample=run.sample, pipelines=run.pipelines, progress=progress
            )
        except EvaluationCancelled:
            raise TaskCancelled(run.cancel_reason or "cancelled while running") from None
        run.checkpoint()
        run.progress = {**run.progress, "stage": "writing reports"}
        data = result.to_dict()
        write_reports(data, run.folder)
        run.summary = {k: v for k, v in data.items() if k not in ("samples", "chunks")}

    def _finished(self, run: Evaluation) -> None:
        run.progress = {**run.progress, "stage": run.status}
        run.loaded = None  # the suite (and its questions) are no longer needed
        self._save(run)
        if self.on_finish is not None:
            self.on_finish(run)

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
