"""Where a ragkit home keeps things on disk: one place for the folder layout.

A home (``Settings.home``, or the ``store_dir`` a caller passes) holds::

    collections/NAME/collection.yaml   the collection's config and embedding
    collections/NAME/store/            the vector store's folder
    collections/NAME/lexical/          the keyword index
    collections/NAME/generation        an id that changes when a reindex swaps in a new generation
    collections/.NAME.reindex-ID/      a reindex's new generation while it is built (removed after the swap)
    cache/embeddings.sqlite            the embedding cache, shared by collections
    cache/chunk-context.sqlite         the chunk-context answer cache
    conversations.sqlite               stored conversations (``conversation_id``)
    rerankers/NAME/                    cross-encoders ``ragkit rerank train`` wrote (``default`` unless told)
    documents/NAME/                    files uploaded through the service
    staging/                           uploads while they arrive

Everything else (the CLI, the service) asks :class:`HomeLayout` and
:class:`CollectionFolder` for these paths instead of spelling them out.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from ragkit.config import Settings
from ragkit.errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CONFIG_FILE = "collection.yaml"


def check_collection_name(name: str) -> str:
    """``name`` if it is a valid collection name, else an :class:`InputError` saying what is allowed."""
    if not _NAME.fullmatch(name):
        raise InputError(
            f"collection name {name!r} is not valid: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def home_dir(store_dir: str | Path | None) -> Path:
    """The home folder: ``store_dir`` when given, else the configured ``Settings.home``."""
    return Path(store_dir).expanduser() if store_dir is not None else Settings.load().home


@dataclass(frozen=True)
class CollectionFolder:
    """The files of one collection."""

    path: Path

    @property
    def name(self) -> str:
        """The collection's name (the folder's)."""
        return self.path.name

    @property
    def config_file(self) -> Path:
        """``collection.yaml``: the configuration and embedding it was created with."""
        return self.path / CONFIG_FILE

    @property
    def store(self) -> Path:
        """The folder handed to the vector store."""
        return self.path / "store"

    @property
    def lexical(self) -> Path:
        """The keyword index's folder."""
        return self.path / "lexical"

    @property
    def lexical_stale(self) -> Path:
        """Present while the keyword index may lag the vectors (an ingest is running, or one crashed)."""
        return self.path / "lexical.stale"

    @property
    def ingest_lock(self) -> Path:
        """The file whose lock one writer at a time holds."""
        return self.path / ".ingest.lock"

    @property
    def generation_file(self) -> Path:
        """Holds the id of this generation of the collection (written by a reindex; absent before the first)."""
        return self.path / "generation"

    def generation(self) -> str:
        """What identifies the generation now at :attr:`path`: the folder's inode and its generation id.

        It changes when a reindex swaps a new generation in (or the collection is
        deleted and created again), so a process holding the collection open can
        tell that it must reopen it. ``""`` when the folder does not exist.
        """
        try:
            inode = os.stat(self.path).st_ino
        except OSError:
            return ""
        try:
            marker = self.generation_file.read_text(encoding="utf-8").strip()
        except OSError:
            marker = ""
        return f"{inode}:{marker}"

    @property
    def home(self) -> HomeLayout:
        """The home this collection belongs to."""
        return HomeLayout(self.path.parent.parent)


@dataclass(frozen=True)
class HomeLayout:
    """The folders of one ragkit home."""

    root: Path

    @classmethod
    def of(cls, store_dir: str | Path | None) -> HomeLayout:
        """The layout of ``store_dir``, or of the configured home when it is ``None``."""
        return cls(home_dir(store_dir))

    @property
    def collections(self) -> Path:
        """The folder holding one folder per collection."""
        return self.root / "collections"

    def collection(self, name: str) -> CollectionFolder:
        """The folder of collection ``name`` (an :class:`InputError` if the name is not valid)."""
        return CollectionFolder(self.collections / check_collection_name(name))

    def collection_names(self) -> list[str]:
        """Names of the collections in this home (folders with a ``collection.yaml``), sorted."""
        if not self.collections.is_dir():
            return []
        return sorted(
            p.name for p in self.collections.iterdir() if _NAME.fullmatch(p.name) and (p / CONFIG_FILE).is_file()
        )

    def reindex_staging(self, name: str) -> CollectionFolder:
        """A new, unused folder beside collection ``name`` where a reindex builds its next generation.

        Hidden (a leading dot, never a valid collection name), so it is never
        listed as a collection; on the same file system, so it can be swapped in.
        """
        return CollectionFolder(self.collections / f".{check_collection_name(name)}.reindex-{uuid.uuid4().hex[:12]}")

    def reindex_leftovers(self, name: str) -> list[Path]:
        """Folders a reindex of ``name`` left behind (it was killed before it could remove them)."""
        if not self.collections.is_dir():
            return []
        return sorted(self.collections.glob(f".{check_collection_name(name)}.reindex-*"))

    @property
    def embedding_cache(self) -> Path:
        """The embedding cache's database."""
        return self.root / "cache" / "embeddings.sqlite"

    @property
    def context_cache(self) -> Path:
        """The chunk-context answer cache's database."""
        return self.root / "cache" / "chunk-context.sqlite"

    @property
    def conversations(self) -> Path:
        """The conversation store's database."""
        return self.root / "conversations.sqlite"

    @property
    def rerankers(self) -> Path:
        """The folder of named rerankers (``model: NAME`` of a cross-encoder stage finds ``rerankers/NAME``)."""
        return self.root / "rerankers"

    def documents(self, name: str) -> Path:
        """Where the service keeps the uploaded files of collection ``name``."""
        return self.root / "documents" / check_collection_name(name)

    @property
    def staging(self) -> Path:
        """Where the service writes uploads while they arrive (same file system, so moving one in is atomic)."""
        return self.root / "staging"
