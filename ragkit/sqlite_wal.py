"""Opening SQLite files in WAL mode from many threads and processes at once.

Every writable SQLite file of ragkit (caches, the BM25 index, FAISS's record
table, conversations) is opened here, so that two collections, threads or
workers opening the same new file at the same moment both get a connection.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def connect_wal(path: Path | str, wait_s: float = 30.0) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode with a 30 s busy timeout, autocommitting (``isolation_level=None``).

    Switching a new file to WAL takes a lock that SQLite's busy handler does
    not wait for: a second connection opening the same file at that moment
    gets "database is locked" at once. That is retried here for up to
    ``wait_s`` seconds; any other error is raised.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.005
    while True:
        conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
        except BaseException:
            conn.close()
            raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
