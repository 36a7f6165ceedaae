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

import hashlib
import json
from pathlib import Path
from typing import Any

from ragkit.kvstore import JsonStore

CACHE_FILE = "ragas-judge-cache.sqlite3"
"""The cache's file name inside ``cache_dir``."""
_SCHEMA_VERSION = 2


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
        self._store = JsonStore(Path(cache_dir) / CACHE_FILE, "judge cache", _SCHEMA_VERSION)
        self.path = self._store.path

    @property
    def enabled(self) -> bool:
        """Whether the cache file is open."""
        return self._store.enabled

    def get(self, key: str) -> tuple[str, str] | None:
        """The cached ``(text, finish_reason)`` for ``key``, or ``None``."""
        found = self._store.get(key)
        if not isinstance(found, dict) or not isinstance(found.get("text"), str):
            return None
        return found["text"], str(found.get("finish_reason", "stop"))

    def put(self, key: str, model: str, text: str, finish_reason: str) -> None:
        """Remember the answer for ``key`` (a failure to write is logged, never raised)."""
        self._store.put(key, {"model": model, "text": text, "finish_reason": finish_reason})

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        """Close the file."""
        self._store.close()
