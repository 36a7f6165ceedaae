"""An on-disk cache of judge calls, so a re-run asks the judge nothing it was asked before.

One SQLite file (WAL mode, safe between threads and processes) maps a key
to the judge's answer text. The key is a hash of everything that decides
the answer: the judge's fingerprint (its class, model name and the options
that change what it writes, not timeouts or retry counts), the chat
messages, the sampling options and, for sampled (``temperature > 0``)
calls, which repetition of the same prompt within a sample this is.

Only answers are cached: failed calls (errors, timeouts) never are, so a
re-run retries them. Unparsable answers are cached like any other answer:
what to do with them (ask again with a correction) is itself deterministic
and cached. The cache never fails a run: a file that cannot be opened or
written is logged and the cache switched off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CACHE_FILE = "ragas-judge-cache.sqlite3"
"""The cache's file name inside ``cache_dir``."""
_SCHEMA_VERSION = 1


def cache_key(fingerprint: str, messages: list[dict[str, Any]], options: dict[str, Any], occurrence: int = 0) -> str:
    """The cache key of one judge call (a SHA-256 hex digest)."""
    payload = json.dumps(
        {"v": _SCHEMA_VERSION, "judge": fingerprint, "messages": messages, "options": options, "n": occurrence},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class JudgeCache:
    """Judge answers by key in ``<cache_dir>/ragas-judge-cache.sqlite3``."""

    def __init__(self, cache_dir: Path | str) -> None:
        self.path = Path(cache_dir) / CACHE_FILE
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS judge_calls ("
                " key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL,"
                " finish_reason TEXT NOT NULL, created REAL NOT NULL)"
            )
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            self._conn = conn
        except (OSError, sqlite3.Error) as exc:
            logger.warning("judge cache %s cannot be used (%s); judge calls will not be cached", self.path, exc)

    @property
    def enabled(self) -> bool:
        """Whether the cache file is open."""
        return self._conn is not None

    def get(self, key: str) -> tuple[str, str] | None:
        """The cached ``(text, finish_reason)`` for ``key``, or ``None``."""
        if self._conn is None:
            return None
        try:
            with self._lock:
                row = self._conn.execute("SELECT text, finish_reason FROM judge_calls WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            logger.warning("judge cache %s could not be read (%s)", self.path, exc)
            return None
        return None if row is None else (str(row[0]), str(row[1]))

    def put(self, key: str, model: str, text: str, finish_reason: str) -> None:
        """Remember the answer for ``key`` (a failure to write is logged, never raised)."""
        if self._conn is None:
            return
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT OR REPLACE INTO judge_calls (key, model, text, finish_reason, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (key, model, text, finish_reason, time.time()),
                )
        except sqlite3.Error as exc:
            logger.warning("judge cache %s could not be written (%s)", self.path, exc)

    def __len__(self) -> int:
        if self._conn is None:
            return 0
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM judge_calls").fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
