"""Ingest job records on disk: one JSON file per job under ``{store_dir}/jobs/``.

The same mechanism as the evaluation runs (``evaluation.json``): every record
is written to a temporary file beside it and renamed over the old one
(``os.replace``), so a reader (or a service started after a crash) never sees
half a record. A record is the job as ``GET /v1/jobs/{id}`` shows it, plus a
``spec``: what the job needs to run again (an upload's staging folder, its
file names and source prefix; an ingest-by-path's path, ``sync`` and prefix).

Finished records are bounded: :meth:`JobStore.prune` keeps the newest
``max_kept`` finished jobs and drops those finished more than ``max_age_days``
ago (settings ``max_jobs_kept`` and ``job_retention_days``). Jobs that have not
finished are never pruned: the service decides what happens to them at start
(see :meth:`ragkit.service.jobs.JobManager.recover`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("ragkit.service")

JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
"""What a job id looks like (anything else is never a file name)."""
FINISHED_STATES = ("succeeded", "failed", "cancelled", "interrupted")


class JobStore:
    """The job records of one service home; see the module docstring."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._warned = False
        self._claim: Any = None

    def claim(self) -> bool:
        """Hold the folder's lock for this process's lifetime; ``False`` when another live service holds it.

        The lock (``flock`` on ``.owner.lock``) goes with the process, however it ends, so a service killed
        with SIGKILL leaves nothing to clean up. A folder that cannot be written is ``True``: nothing to guard.
        """
        if self._claim is not None:
            return True
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.folder / ".owner.lock", "w")  # noqa: SIM115 - held until release()
        except OSError:
            return True
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._claim = handle
        return True

    def release(self) -> None:
        """Let go of the lock :meth:`claim` took (at shutdown)."""
        handle, self._claim = self._claim, None
        if handle is not None:
            handle.close()

    def path(self, job_id: str) -> Path:
        """The record file of ``job_id`` (a valid id: see :data:`JOB_ID`)."""
        return self.folder / f"{job_id}.json"

    def save(self, record: dict[str, Any]) -> None:
        """Write ``record`` atomically; a disk that refuses is logged (the job itself goes on)."""
        target = self.path(record["id"])
        temporary = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
        text = json.dumps(record, indent=1, default=str)
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                temporary.write_text(text, encoding="utf-8")
                os.replace(temporary, target)
            except OSError as exc:
                temporary.unlink(missing_ok=True)
                if not self._warned:  # once: a read-only home would otherwise log every progress step
                    log.warning("could not record job %s in %s: %s", record["id"], target, exc)
                    self._warned = True

    def read(self, job_id: str) -> dict[str, Any] | None:
        """The record of ``job_id``, or ``None`` if unknown, unreadable or not a valid id."""
        if not JOB_ID.fullmatch(job_id):
            return None
        try:
            data = json.loads(self.path(job_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("id") == job_id else None

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first (by ``created_at``)."""
        if not self.folder.is_dir():
            return []
        found = []
        for file in self.folder.glob("job_*.json"):
            data = self.read(file.stem)
            if data is not None:
                found.append(data)
        return sorted(found, key=lambda r: str(r.get("created_at") or ""))

    def remove(self, job_id: str) -> None:
        """Forget the record of ``job_id``."""
        if JOB_ID.fullmatch(job_id):
            self.path(job_id).unlink(missing_ok=True)

    def prune(self, max_kept: int, max_age_days: float | None, now: datetime | None = None) -> int:
        """Drop finished records beyond the newest ``max_kept`` or older than ``max_age_days``; returns how many."""
        now = now or datetime.now(UTC)
        finished = [r for r in self.records() if r.get("status") in FINISHED_STATES]
        doomed = finished[: max(0, len(finished) - max_kept)]
        if max_age_days is not None:
            cutoff = now - timedelta(days=max_age_days)
            doomed += [r for r in finished[len(doomed) :] if _when(r.get("finished_at")) < cutoff]
        for record in doomed:
            self.remove(str(record["id"]))
        with self._lock:  # no write of this process is under way: a temporary file left is a crash's
            for stale in self.folder.glob(".job_*.tmp") if self.folder.is_dir() else ():
                stale.unlink(missing_ok=True)
        return len(doomed)


def _when(value: Any) -> datetime:
    """A record's timestamp; a missing or malformed one counts as very old."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
