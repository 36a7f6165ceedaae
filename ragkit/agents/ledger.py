"""Which paused agent states have been resumed already, so that a state resumes once.

A paused run's state is a signed token the client carries (:mod:`ragkit.agents.state`). The signature
stops a client from editing it, but not from sending it twice: without a record, a second resume with
the same approvals would run the approved calls again (a payment made twice, a row written twice).
Each state carries a random ``nonce``; resuming it claims that nonce in a ledger, and a nonce that is
claimed already is refused with a :class:`~ragkit.errors.ConflictError` (HTTP 409).

- :class:`MemoryLedger`: one process (the default of an :class:`~ragkit.agents.agent.Agent`);
- :class:`SqliteLedger`: a SQLite file, for service workers and replicas that share a store folder
  (``ragkit serve`` keeps ``<store>/agent-resumes.sqlite``).

A claim is remembered until its state would have expired anyway (the agent's ``state_ttl_s``); later
the state is refused as expired, so the record is no longer needed and is purged.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from ragkit.errors import StorageError


class ResumeLedger(Protocol):
    """Records each resumed state's nonce; a nonce can be claimed once."""

    def claim(self, nonce: str, expires_at: float) -> bool:
        """Claim ``nonce`` (kept until ``expires_at``, a Unix time); ``False`` if it was claimed before."""
        ...


class MemoryLedger:
    """A ledger in this process's memory (thread-safe)."""

    def __init__(self) -> None:
        self._claimed: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, nonce: str, expires_at: float) -> bool:
        """Claim ``nonce``; ``False`` if this process claimed it before."""
        now = time.time()
        with self._lock:
            if len(self._claimed) > 1024:
                self._claimed = {n: t for n, t in self._claimed.items() if t > now}
            if nonce in self._claimed:
                return False
            self._claimed[nonce] = expires_at
            return True


class SqliteLedger:
    """A ledger in a SQLite file, shared by every process that opens the same file.

    The claim is one ``INSERT OR IGNORE`` on a primary key, so two workers resuming the same state at
    the same moment cannot both win.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS resumed (nonce TEXT PRIMARY KEY, expires_at REAL NOT NULL)")
        except sqlite3.Error as exc:
            raise StorageError(f"agent resume ledger {self.path}: cannot be opened ({exc})") from exc

    def _connect(self) -> sqlite3.Connection:
        # the default rollback journal: switching a new file to WAL takes a lock that the busy timeout does not
        # wait for, so workers opening the ledger at once failed with "database is locked"; claims are tiny writes
        return sqlite3.connect(self.path, timeout=30.0, isolation_level=None)

    def claim(self, nonce: str, expires_at: float) -> bool:
        """Claim ``nonce``; ``False`` if any process sharing the file claimed it before."""
        try:
            db = self._connect()
            try:
                db.execute("DELETE FROM resumed WHERE expires_at < ?", (time.time(),))
                insert = "INSERT OR IGNORE INTO resumed (nonce, expires_at) VALUES (?, ?)"
                cursor = db.execute(insert, (nonce, expires_at))
                return cursor.rowcount == 1
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise StorageError(f"agent resume ledger {self.path}: cannot record a resume ({exc})") from exc


PROCESS_LEDGER = MemoryLedger()
"""The ledger of agents that were given none: resumes are checked within this process."""
