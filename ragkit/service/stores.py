"""The open-collection cache the routes share.

Opening a collection builds its embedder and loads its index, so the service
keeps each open :class:`~ragkit.collection.Collection` and hands the same object to
every request. The cache is thread-safe (all its methods block: call them from a
worker thread), closes a collection when it is deleted, reopens one when a
reindex swapped a new generation into its folder, and closes them all at
shutdown. Where things are on disk comes from
:class:`~ragkit.collection.layout.HomeLayout`: uploaded files live beside the
collections, uploads are staged in a folder on the same file system (so moving
a file in is atomic).
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from ragkit.collection import Collection, HomeLayout
from ragkit.config import CollectionConfig
from ragkit.errors import InputError, StorageError
from ragkit.protocols import RefreshableStore, capabilities_of

log = logging.getLogger("ragkit.service")


class CollectionCache:
    """Open collections by name, shared by every request."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = Path(store_dir)
        self.layout = HomeLayout(self.store_dir)
        self._open: dict[str, Collection] = {}
        self._generations: dict[str, str] = {}
        """The generation (:meth:`CollectionFolder.generation`) each open collection was opened at."""
        self._lock = threading.RLock()

    # -- folders ---------------------------------------------------------------------

    def documents_dir(self, name: str) -> Path:
        """Where the uploaded files of collection ``name`` are kept."""
        return self.layout.documents(name)

    @property
    def staging_dir(self) -> Path:
        """Where uploads are written while they arrive."""
        return self.layout.staging

    # -- collections -----------------------------------------------------------------

    def names(self) -> list[str]:
        """Names of the collections in the store."""
        return Collection.names(self.store_dir)

    def deleted(self, name: str) -> bool:
        """``True`` when ``name`` is a valid collection name whose collection does not exist (any more)."""
        try:
            return not self.layout.collection(name).config_file.exists()
        except InputError:
            return False

    def created(self, name: str) -> int:
        """When collection ``name`` was created (its config file's time, in Unix seconds); 0 if unknown."""
        try:
            return int(self.layout.collection(name).config_file.stat().st_mtime)
        except OSError:
            return 0

    def get(self, name: str) -> Collection:
        """The open collection ``name`` (:class:`NotFoundError` if it does not exist)."""
        with self._lock:
            collection = self._open.get(name)
            if collection is not None and collection.exists:
                if collection.files.generation() == self._generations.get(name):
                    store = collection.store
                    if "refresh" in capabilities_of(store):  # a CLI ingest beside the server: serve its chunks too
                        cast(RefreshableStore, store).refresh()
                    return collection
                # a reindex swapped a new generation in: open it; requests still on the old one finish there
                log.info("collection %r has a new generation (reindexed): reopening it", name)
                self._open.pop(name, None)
            elif collection is not None:  # deleted behind our back (CLI, another process)
                self._forget(name)
            generation = self.layout.collection(name).generation()
            collection = Collection.open(name, self.store_dir)
            self._warm(collection)
            self._open[name] = collection
            self._generations[name] = generation
            return collection

    def create(self, name: str, config: CollectionConfig | dict[str, Any] | None) -> Collection:
        """Create collection ``name`` (:class:`ConflictError` if it exists)."""
        with self._lock:
            collection = Collection.create(name, config, self.store_dir)
            self._warm(collection)
            self._open[name] = collection
            self._generations[name] = collection.files.generation()
            return collection

    def delete(self, name: str) -> None:
        """Close and delete collection ``name`` with its data and uploaded files."""
        with self._lock:
            collection = self.get(name)
            collection.close()
            self._open.pop(name, None)
            self._generations.pop(name, None)
            Collection.delete(name, self.store_dir)
            documents = self.documents_dir(name)
            if documents.exists():
                try:
                    shutil.rmtree(documents)
                except OSError as exc:
                    raise StorageError(f"cannot delete uploaded documents {documents}: {exc.strerror}") from None

    def close(self) -> None:
        """Close every open collection."""
        with self._lock:
            for name in list(self._open):
                self._forget(name)

    def _forget(self, name: str) -> None:
        self._generations.pop(name, None)
        collection = self._open.pop(name, None)
        if collection is not None:
            try:
                collection.close()
            except Exception:  # closing must not stop the others from closing
                log.exception("closing collection %r failed", name)

    @staticmethod
    def _warm(collection: Collection) -> None:
        """Build the lazily created parts now, under the lock, so threads never race to build them."""
        _ = collection.embedder, collection.store, collection.splitter, collection.lexical


_COLLECTION_PATH = re.compile(r"/v1/collections/([^/]+)(?:/.*)?")


def collection_deleted_under(path: str, collections: CollectionCache) -> str | None:
    """The collection a request path names when it no longer exists, else ``None``.

    A request that fails on a server error while its collection is deleted
    (a search racing ``DELETE /v1/collections/X``) is answered 404, not 500.
    """
    match = _COLLECTION_PATH.fullmatch(path)
    if match is None:
        return None
    name = unquote(match.group(1))
    return name if collections.deleted(name) else None
