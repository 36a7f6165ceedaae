"""Make a folder read-only for a test, even for root (which ignores permission bits)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def read_only_folder(folder: Path) -> Iterator[None]:
    """Within the block, writes under ``folder`` fail with EROFS or EACCES."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    # root: a read-only bind mount of the folder onto itself
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot make {folder} read-only for the test (mount failed: {done.stderr.strip()})")
    try:
        yield
    finally:
        # lazily, in case a test left a file open below the folder
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
