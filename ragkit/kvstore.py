"""A small on-disk key → JSON store in SQLite, for caches of model output that must never fail a run.

One file in WAL mode: safe between threads (one lock) and processes (SQLite's
own locking, a 30 s busy timeout). A file that cannot be opened, read or
written is logged and the store behaves as empty: a cache that breaks costs
time, never the run. The judge cache of ``connectors/ragas`` and the
evaluation answer cache (:mod:`ragkit.evaluation.answer_cache`) use it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ragkit.sqlite_wal import connect_wal

logger = logging.getLogger(__name__)


class JsonStore:
    """JSON values by string key in one SQLite file.

    Args:
        path: The file (its folder is created).
        purpose: What the store is for, in log messages (``judge cache``).
        version: The schema version of the values; a file written with another
            version is emptied on open rather than misread.

    """

    def __init__(self, path: Path | str, purpose: str, version: int = 1) -> None:
        self.path = Path(path)
        self.purpose = purpose
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_wal(self.path)
            try:
                # one writer at a time: two stores opening a new file at once must not both see "no version"
                # and the later one empty what the earlier one already cached
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS entries "
                    "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
                )
                found = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if found != version:
                    conn.execute("DELETE FROM entries")
                    conn.execute(f"PRAGMA user_version = {int(version)}")
                conn.execute("COMMIT")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        except (OSError, sqlite3.Error) as exc:
            logger.warning("%s %s cannot be used (%s); nothing will be cached", purpose, self.path, exc)

    @property
    def enabled(self) -> bool:
        """Whether the file is open."""
        return self._conn is not None

    def get(self, key: str) -> Any | None:
        """The value stored under ``key``, or ``None`` (also when the file cannot be read)."""
        if self._conn is None:
            return None
        try:
            with self._lock:
                row = self._conn.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
            return None if row is None else json.loads(row[0])
        except (sqlite3.Error, ValueError) as exc:
            logger.warning("%s %s could not be read (%s)", self.purpose, self.path, exc)
            return None

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-ready) under ``key``; a failure to write is logged, never raised."""
        if self._conn is None:
            return
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
            with self._lock:
                self._conn.execute(
                    "INSERT OR REPLACE INTO entries (key, value, created) VALUES (?, ?, ?)", (key, text, time.time())
                )
        except (sqlite3.Error, ValueError, TypeError) as exc:
            logger.warning("%s %s could not be written (%s)", self.purpose, self.path, exc)

    def __len__(self) -> int:
        if self._conn is None:
            return 0
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM entries").fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
