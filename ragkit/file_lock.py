"""A blocking, exclusive lock on a file, shared by every process on the machine (POSIX ``flock``).

Used where two processes may build the same thing at once, e.g. two
connectors assembling a packaged model into one folder: the second waits
for the first and then finds the work done. (A collection's writer lock,
which refuses rather than waits, is :mod:`ragkit.collection.writer_lock`.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, with its folder, if missing) for the ``with`` block.

    Blocks until no other process holds it. Where ``fcntl`` is missing
    (Windows) the block runs unlocked.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
