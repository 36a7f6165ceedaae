"""Reindexing: rebuild a collection with a new configuration, then swap it in atomically.

A collection's configuration (loader options, splitter, embedder, store,
keyword index) is fixed when it is created. :func:`reindex_collection` changes it: it
reads the collection's recorded sources again from their files and ingests
them with the new configuration into a new *generation*, a hidden folder
beside the live one (``collections/.NAME.reindex-ID``), while the live
generation keeps answering searches and questions. When the new generation
is complete it is swapped in with one atomic step, ``renameat2(2)`` with
``RENAME_EXCHANGE`` (where the file system or C library lacks it, two
renames, with a moment in between when the collection is missing), and the
old generation is removed. The collection's writer lock is held from the
first step to the last, so no other ingest can write in between (it fails
with a :class:`~ragkit.errors.ConflictError`).

If anything fails or the rebuild is cancelled (``checkpoint`` raises, or
Ctrl-C) before the swap, the new folder is removed and the live collection
is exactly as it was.

Where each recorded source is read from, in order: the file URI in its
chunks' ``uri`` metadata (``file:///...``), the source itself when it is an
absolute path, and the collection's uploads folder (``documents/NAME/``)
for a source named by its upload name. Sources whose file is gone stop the
reindex with the list, unless ``drop_missing`` leaves them out.

A process that has the collection open sees the swap through
:meth:`~ragkit.collection.layout.CollectionFolder.generation` (the folder's
inode and its ``generation`` id) and reopens it; the service does that on
its next request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import errno
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit import registry
from ragkit.collection.components import Components, validate_components
from ragkit.collection.config_file import CollectionRecord, write_record
from ragkit.collection.keyword import KeywordUpkeep
from ragkit.collection.layout import CollectionFolder
from ragkit.collection.writer_lock import writer_lock
from ragkit.config import CollectionConfig
from ragkit.errors import ConfigError, ConflictError, InputError, storage_errors
from ragkit.ingest import FileIssue, IngestPipeline, IngestReport, ProgressCallback, source_uris, uri_path
from ragkit.loaders import LoaderSet, SourceFile, discover

if TYPE_CHECKING:
    from ragkit.collection.core import Collection

log = logging.getLogger(__name__)

FILES_PER_STEP = 16
"""Files ingested between two checkpoints (a cancel waits at most this many files)."""

_MISSING_SHOWN = 20
"""How many missing sources an error message names (all are counted)."""


@dataclass
class ReindexReport:
    """What one reindex did."""

    collection: str
    config: CollectionConfig
    """The configuration now in effect."""
    sources: int = 0
    """Sources ingested into the new generation."""
    dropped: list[str] = field(default_factory=list)
    """Recorded sources left out because their files are gone (``drop_missing``)."""
    chunks_before: int = 0
    chunks_after: int = 0
    swap: str = "exchange"
    """How the generations were swapped: ``exchange`` (one atomic step) or ``rename`` (two renames)."""
    ingest: IngestReport = field(default_factory=IngestReport)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "collection": self.collection,
            "config": self.config.model_dump(mode="json"),
            "sources": self.sources,
            "dropped": list(self.dropped),
            "chunks_before": self.chunks_before,
            "chunks_after": self.chunks_after,
            "swap": self.swap,
            "ingest": self.ingest.to_dict(),
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """One line: sources and chunks before and after."""
        dropped = f", {len(self.dropped)} missing sources dropped" if self.dropped else ""
        return (
            f"reindexed {self.sources} sources: {self.chunks_before} chunks before, {self.chunks_after} now"
            f"{dropped} (in {self.seconds:.1f}s)"
        )


# -- finding each source's file ----------------------------------------------------------------


@dataclass(frozen=True)
class SourceFileLocation:
    """Where one recorded source is read from again."""

    path: Path
    uploaded: bool
    """Found in the uploads folder: its chunks carry no ``uri`` (the server's path is nobody's business)."""


def locate_sources(collection: Collection) -> tuple[dict[str, SourceFileLocation], list[str]]:
    """Where each recorded source of ``collection`` can be read again: ``({source: location}, [missing sources])``.

    Looks at the chunks' ``uri`` (a ``file:`` URI) first, then the source as an
    absolute path, then the uploads folder (``documents/NAME/<source>``).
    """
    records = collection.store.sources()
    sources = sorted(records)
    recorded = source_uris(collection.store, list(records.values()))
    uris = {source: path for source, uri in recorded.items() if (path := uri_path(uri)) is not None}
    uploads = collection.files.home.documents(collection.name)
    found: dict[str, SourceFileLocation] = {}
    missing: list[str] = []
    for source in sources:
        candidates = [(uris[source], False)] if source in uris else []
        as_path = Path(source)
        if as_path.is_absolute():
            candidates.append((as_path, False))
        elif ".." not in as_path.parts:
            candidates.append((uploads / as_path, True))
        location = next((SourceFileLocation(c, up) for c, up in candidates if c.is_file()), None)
        if location is None:
            missing.append(source)
        else:
            found[source] = location
    return found, missing


def _source_file(source: str, path: Path, config: CollectionConfig) -> SourceFile | None:
    """The :class:`SourceFile` that ingests ``path`` under its recorded ``source`` id (``None``: excluded now)."""
    for found in discover([path], config.loader):
        relative = found.relative if Path(source).is_absolute() else source
        return dataclasses.replace(found, source=source, relative=relative)
    return None


# -- the atomic swap ---------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _renameat2() -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, "renameat2", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def exchange(first: Path, second: Path) -> bool:
    """Swap two directories in one atomic step (``renameat2`` with ``RENAME_EXCHANGE``).

    ``False`` when this system cannot (no such call in the C library, or the
    file system refuses it); an ``OSError`` for any other failure.
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def swap_in(new: Path, live: Path) -> tuple[Path, str]:
    """Put folder ``new`` at ``live``'s place; returns where the old generation now is, and how it was done."""
    if exchange(new, live):
        return new, "exchange"
    aside = live.with_name(f".{live.name}.old-{uuid.uuid4().hex[:12]}")
    os.rename(live, aside)
    try:
        os.rename(new, live)
    except OSError:
        os.rename(aside, live)
        raise
    return aside, "rename"


def _remove(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", folder, exc.strerror or exc)


# -- the rebuild -------------------------------------------------------------------------------


class _Rebuild(IngestPipeline):
    """The ingest pipeline, fed with files whose source ids are given (not derived from an ingest root)."""

    def run_files(
        self,
        files: Sequence[tuple[SourceFile, bool]],
        progress: ProgressCallback,
        checkpoint: Callable[[], None],
    ) -> IngestReport:
        """Ingest ``files`` (each with whether it was uploaded: then no ``uri``), with ``checkpoint`` between steps."""
        started = time.perf_counter()
        report = IngestReport()
        try:
            done = 0
            for offset in range(0, len(files), FILES_PER_STEP):
                checkpoint()
                step = files[offset : offset + FILES_PER_STEP]
                for uploaded in (False, True):  # whether chunks record their file's uri is set per run
                    part = [file for file, up in step if up is uploaded]
                    if not part:
                        continue
                    self._record_uri = not uploaded
                    self.progress = _shifted(progress, done, len(files))
                    pending = self._scan(part, report)
                    if pending:
                        self._process(pending, report)
                    done += len(part)
        finally:
            if self._context is not None:
                self._context.close()
        checkpoint()
        self.store.flush()
        self._to_destinations(report, lambda d: d.flush())
        report.seconds = time.perf_counter() - started
        return report


def _shifted(progress: ProgressCallback, offset: int, total: int) -> ProgressCallback:
    """``progress`` for one step of files: file counts continue from ``offset`` out of ``total``."""

    def update(stage: str, done: int, step_total: int) -> None:
        if stage in ("scan", "files"):
            progress(stage, offset + done, total)
        else:
            progress(stage, done, step_total)

    return update


def _no_checkpoint() -> None:
    return None


def _check_store_in_folder(collection: Collection, config: CollectionConfig) -> None:
    """A :class:`ConfigError` unless the old and the new store keep their data inside the collection folder.

    A store that keeps it outside (``drop`` capability: Milvus) cannot hold two
    generations of one collection side by side, nor be swapped with the folder.
    """
    for which, kind in (("current", collection.config.store["type"]), ("new", config.store["type"])):
        if "drop" in frozenset(getattr(registry.get("store", str(kind)), "capabilities", ())):  # declared on the class
            raise ConfigError(
                f"cannot reindex collection {collection.name!r}: its {which} store {kind!r} keeps its data outside "
                "the collection folder, so two generations cannot stand side by side; create a new collection "
                "with the new config and ingest into it instead"
            )


def reindex_collection(
    collection: Collection,
    config: CollectionConfig | dict[str, Any],
    *,
    drop_missing: bool = False,
    progress: ProgressCallback | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> ReindexReport:
    """Rebuild ``collection`` from its recorded sources with ``config`` and swap the new generation in.

    See the module docstring. ``collection`` keeps serving the old generation
    until the swap (and is left open: reopen it, or use
    :meth:`Collection.reindex <ragkit.collection.Collection.reindex>`, which
    does). ``checkpoint`` is called between steps; whatever it raises cancels
    the reindex with the collection unchanged. Raises
    :class:`~ragkit.errors.ConflictError` when sources' files are gone (without
    ``drop_missing``) or another writer holds the collection,
    :class:`~ragkit.errors.InputError` when files fail to ingest with the new
    configuration, and :class:`~ragkit.errors.ConfigError` for a store that
    keeps its data outside the folder (Milvus).
    """
    started = time.perf_counter()
    wanted = config if isinstance(config, CollectionConfig) else CollectionConfig.parse(config)
    _check_store_in_folder(collection, wanted)
    validate_components(wanted)
    progress = progress or (lambda stage, done, total: None)
    checkpoint = checkpoint or _no_checkpoint
    live = collection.files
    home = live.home
    name = collection.name
    report = ReindexReport(name, wanted)
    with writer_lock(live):
        for leftover in home.reindex_leftovers(name):  # a reindex killed half-way (we hold the lock: none runs)
            _remove(leftover)
        found, missing = locate_sources(collection)
        if missing and not drop_missing:
            shown = ", ".join(missing[:_MISSING_SHOWN]) + (" ..." if len(missing) > _MISSING_SHOWN else "")
            raise ConflictError(
                f"cannot reindex collection {name!r}: the files of {len(missing)} of its "
                f"{len(found) + len(missing)} sources are gone ({shown}); restore them, or reindex with "
                "--drop-missing (REST: drop_missing: true) to leave them out"
            )
        report.dropped = missing
        report.chunks_before = collection.store.count()
        staging = home.reindex_staging(name)
        try:
            report.ingest = _build(staging, name, wanted, found, progress, checkpoint)
            report.sources = report.ingest.added
            report.chunks_after = report.ingest.chunks_written
            checkpoint()
            with storage_errors(f"cannot swap the new generation of collection {name!r} into {live.path}"):
                old, report.swap = swap_in(staging.path, live.path)
        except BaseException:
            _remove(staging.path)
            raise
        _remove(old)
    report.seconds = time.perf_counter() - started
    log.info("collection %r: %s", name, report.summary())
    return report


def _build(
    staging: CollectionFolder,
    name: str,
    config: CollectionConfig,
    found: dict[str, SourceFileLocation],
    progress: ProgressCallback,
    checkpoint: Callable[[], None],
) -> IngestReport:
    """Ingest ``found`` into a new generation in ``staging`` with ``config``; returns the ingest report."""
    with storage_errors(f"cannot create the new generation of collection {name!r} in {staging.path}"):
        staging.path.mkdir(parents=True)
    parts = Components(name, staging, config, {})
    try:
        embedder = parts.embedder
        parts.embedding = {"dimension": int(embedder.dimension), "fingerprint": embedder.fingerprint}
        write_record(staging, CollectionRecord(config, parts.embedding), name=name)
        with storage_errors(f"cannot write {staging.generation_file}"):
            staging.generation_file.write_text(uuid.uuid4().hex + "\n", encoding="utf-8")
        files: list[tuple[SourceFile, bool]] = []
        excluded: list[FileIssue] = []
        for source, location in found.items():
            source_file = _source_file(source, location.path, config)
            if source_file is None:
                excluded.append(FileIssue(source, "excluded by the new configuration's loader options"))
            else:
                files.append((source_file, location.uploaded))
        lexical = parts.lexical
        upkeep = KeywordUpkeep(staging, lexical, parts.store) if lexical is not None else None
        pipeline = _Rebuild(
            LoaderSet(config.loader),
            parts.splitter,
            parts.embedder,
            parts.store,
            batch_size=config.embed_batch_size,
            chunk_headers=config.chunk_headers,
            context_cache=staging.home.context_cache,
            destinations=[upkeep.index] if upkeep is not None else [],
        )
        if upkeep is None:
            ingest = pipeline.run_files(files, progress, checkpoint)
        else:
            with upkeep.writing():
                ingest = pipeline.run_files(files, progress, checkpoint)
    finally:
        parts.close()
    ingest.skipped.extend(excluded)
    if ingest.failed:
        details = "; ".join(f"{issue.source}: {issue.reason}" for issue in ingest.failed[:_MISSING_SHOWN])
        raise InputError(
            f"cannot reindex collection {name!r}: {len(ingest.failed)} of its sources fail to ingest with the "
            f"new configuration ({details}); the collection is unchanged"
        )
    return ingest
