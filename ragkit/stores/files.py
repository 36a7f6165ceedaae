"""File-system helpers the on-disk stores and indexes share."""

from __future__ import annotations

import os
from pathlib import Path


def writable(path: Path) -> bool:
    """Whether this process can write in ``path`` (or, if it does not exist yet, its nearest existing parent)."""
    probe = path if path.exists() else path.parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return False
    try:  # root passes os.access on a read-only mount, so try for real
        test = probe / f".ragkit-write-test-{os.getpid()}"
        test.touch()
        test.unlink()
        return True
    except OSError:
        return False


def fsync_file(path: Path) -> None:
    """Flush ``path``'s bytes to the disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
