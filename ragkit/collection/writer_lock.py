"""One writer at a time per collection: an exclusive, non-blocking file lock."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from ragkit.collection.layout import CollectionFolder
from ragkit.errors import ConflictError, storage_error


@contextmanager
def writer_lock(folder: CollectionFolder) -> Iterator[None]:
    """Hold the collection's writer lock for the block.

    A :class:`ConflictError` if another writer (thread or process) holds it, a
    :class:`~ragkit.errors.StorageError` if the folder is not writable
    (:class:`~ragkit.errors.StorageReadOnlyError` on a read-only file system,
    :class:`~ragkit.errors.StorageFullError` on a full one).
    """
    try:
        folder.path.mkdir(parents=True, exist_ok=True)
        handle = open(folder.ingest_lock, "w")  # noqa: SIM115 - held for the whole block
    except OSError as exc:
        raise storage_error(exc, f"collection folder {folder.path} is not writable") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(f"another ingest into collection {folder.name!r} is running") from None
        yield
    finally:
        handle.close()
