"""The loader base class and what every loader shares."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ragkit.component import Component
from ragkit.errors import LoaderError
from ragkit.hashing import document_id
from ragkit.schema import Document, Metadata


class UnsupportedFileError(LoaderError):
    """No loader reads this kind of file (its suffix is unknown)."""


@dataclass
class SourceFile:
    """A file found by :func:`~ragkit.loaders.discover`, ready to be loaded."""

    path: Path
    """Where to read it (absolute, as walked; may be a followed symlink)."""
    source: str
    """The name its documents carry: the source prefix (if any) plus :attr:`relative` (``hr/a.docx``)."""
    size: int
    """Size in bytes."""
    mtime: float
    """Modification time (seconds since the epoch)."""
    relative: str = ""
    """Its POSIX path relative to the root it was found under (the file name for a file named directly)."""
    resolved: str = ""
    """Its absolute resolved POSIX path: the source id ragkit gave files before source ids were relative."""

    @property
    def uri(self) -> str:
        """The absolute ``file:`` URI of :attr:`path` (as walked, not resolved)."""
        return self.path.absolute().as_uri()


class BaseLoader(Component):
    """Turns one file into documents.

    Subclasses set :attr:`extensions` and implement :meth:`load` as a
    generator. A problem with the file is raised as
    :class:`~ragkit.errors.LoaderError` naming the file and the reason; a
    loader may raise it after yielding some documents (a streamed file that
    turns bad half-way), so callers treat the whole file as failed.
    """

    role: ClassVar[str] = "loader"
    extensions: ClassVar[tuple[str, ...]] = ()
    """Lower-case file suffixes it reads, with the dot (``.md``)."""
    checks_archives: ClassVar[bool] = False
    """True when :meth:`load` runs :func:`~ragkit.loaders.archive_limits.check_archive` itself on zip-based
    files; otherwise :class:`~ragkit.loaders.LoaderSet` runs it before calling the loader."""

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """Parse ``path``; ``source`` is the name its documents carry."""
        raise NotImplementedError

    async def aload(self, path: Path, source: str) -> list[Document]:
        """Async twin of :meth:`load`, run in a worker thread."""
        return await asyncio.to_thread(lambda: list(self.load(path, source)))

    # helpers for subclasses

    @staticmethod
    def base_metadata(path: Path, source: str, **extra: Any) -> Metadata:
        """``source``, ``file_name`` and ``file_type`` plus ``extra``."""
        return {"source": source, "file_name": path.name, "file_type": path.suffix.lower().lstrip("."), **extra}

    @staticmethod
    def make_document(source: str, text: str, metadata: Metadata, fragment: str | None = None) -> Document:
        """A document whose id is ``document_id(source)`` or ``document_id(f"{source}#{fragment}")``."""
        doc_id = document_id(source if fragment is None else f"{source}#{fragment}")
        return Document(id=doc_id, source=source, text=text, metadata=metadata)


def scalar_metadata(values: dict[str, Any]) -> Metadata:
    """Keep the values metadata can hold (str, int, float, bool, None); dates become ISO strings."""
    import datetime as dt

    kept: Metadata = {}
    for key, value in values.items():
        if isinstance(value, str | int | float | bool) or value is None:
            kept[str(key)] = value
        elif isinstance(value, dt.date | dt.datetime | dt.time):
            kept[str(key)] = value.isoformat()
    return kept


RESERVED_METADATA = frozenset({"source", "file_name", "file_type", "uri", "row"})
"""Metadata keys ragkit sets itself; a record's or column's own value under these names is not kept."""


def open_error(path: Path, exc: OSError) -> LoaderError:
    """A :class:`LoaderError` for a file that cannot be opened or read."""
    return LoaderError(str(path), f"cannot read file: {exc.strerror or exc}")
