"""Incremental ingestion: files -> loader -> splitter -> embedder -> store (and other destinations).

A source whose size and modification time are unchanged, or whose bytes hash
to the stored content hash, is skipped without being parsed or embedded. A
changed source has its new chunks written first and its stale chunks
deleted only when all of them are in (``commit_sources``), so its old
version stays searchable until the new one is complete. With ``sync``,
sources under the ingested roots that no longer exist are deleted. One bad
file is reported with its reason and never stops the batch.

Source ids are relative to the root they were found under (``hr/a.docx``;
a file named directly is its name), optionally under a ``source_prefix``
(``team/hr/a.docx``). Every chunk of a file read from disk carries the
file's absolute ``file:`` URI in ``metadata["uri"]`` (unless ``record_uri``
is off, as for uploads); it tells which root a source came from, so:

- a file whose source record was made before ids were relative (its
  absolute resolved path) is replaced by its relative id in the same write,
  like a changed file (nothing duplicated);
- ``sync`` deletes only the sources whose URI (or old absolute id) lies
  under the roots being synced, never another root's;
- a different file that would take a source id another root's file still
  holds is refused with :class:`~ragkit.errors.ConflictError` before
  anything is written (give one of the roots a ``source_prefix``). A file
  whose recorded URI no longer exists (its folder moved) is just updated.

Besides the vector store, an ingest writes to its *destinations*
(:class:`~ragkit.protocols.IngestDestination`, such as the keyword index):
each gets the very chunks, source commits and deletions the store gets, so it
is kept up to date incrementally. The time each takes is reported under its
``label`` in ``stage_seconds``.

Loading and splitting run in a producer thread while the main thread embeds
large batches, so the embedder, the real cost, stays busy.

With contextual chunk headers on (``chunk_headers``, see
:class:`~ragkit.config.ChunkHeaders`), the text embedded is the chunk
prefixed with its document title and heading path; the prefix is kept in
``chunk.metadata["chunk_header"]`` so the keyword index indexes the very
same text. ``chunk.text`` stays plain.

With ``chunk_headers.context`` set (see :class:`~ragkit.config.ChunkContext`
and :mod:`ragkit.chunk_context`), each chunk written gets one model-written
sentence situating it in its document, added to that header; the model is
called just before a batch is embedded, so only chunks of new or changed
sources (and only those not in the answer cache) cost a call. A chunk whose
call fails or answers garbage keeps its plain header; the report counts it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ragkit.config import CHUNK_HEADER_KEY, ChunkHeaders
from ragkit.errors import ConflictError, LoaderError, RagkitError
from ragkit.loaders import LoaderSet, SourceFile, UnsupportedFileError, discover
from ragkit.protocols import DocumentChunks, Embedder, IngestDestination, Splitter, VectorStore, capabilities_of
from ragkit.schema import Chunk, SourceRecord

if TYPE_CHECKING:
    from ragkit.chunk_context import ContextWriter

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages: ``scan``, ``files``, ``context``, ``chunks``.

``total`` is 0 when it is not known in advance (``chunks``, ``context``).
"""

_CONTEXT_FAILURES_KEPT = 10
"""The ingest report keeps the reasons of this many failed context sentences (all are counted)."""

_FILE_CHUNK_BUFFER = 4096
"""A file's chunks are passed on together unless it has more than this many."""


@dataclass(slots=True)
class FileIssue:
    """A file that was not ingested, and why."""

    source: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"source": self.source, "reason": self.reason}


@dataclass
class IngestReport:
    """What one ingest run did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: list[FileIssue] = field(default_factory=list)
    skipped: list[FileIssue] = field(default_factory=list)
    chunks_written: int = 0
    chunks_embedded: int = 0
    """Chunks whose text went to the model (the rest came from the embedding cache)."""
    chunks_deleted: int = 0
    context_written: int = 0
    """Chunks that got a model-written context sentence (``chunk_headers.context``), cached or not."""
    context_calls: int = 0
    """Model calls made for context sentences (the rest came from the answer cache)."""
    context_failed: int = 0
    """Chunks left with the plain header: the call failed, or the answer was empty or unusable."""
    context_failures: list[FileIssue] = field(default_factory=list)
    """The first reasons of ``context_failed`` (source and ``chunk N: reason``)."""
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether the collection's content changed."""
        return bool(self.added or self.updated or self.deleted or self.chunks_deleted)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "failed": [f.to_dict() for f in self.failed],
            "skipped": [s.to_dict() for s in self.skipped],
            "chunks_written": self.chunks_written,
            "chunks_embedded": self.chunks_embedded,
            "chunks_deleted": self.chunks_deleted,
            "context_written": self.context_written,
            "context_calls": self.context_calls,
            "context_failed": self.context_failed,
            "context_failures": [f.to_dict() for f in self.context_failures],
            "seconds": round(self.seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }

    def summary(self) -> str:
        """One line: the counts a user checks first."""
        context = ""
        if self.context_written or self.context_failed:
            context = (
                f"; context sentences: {self.context_written} written ({self.context_calls} model calls), "
                f"{self.context_failed} failed"
            )
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deleted {self.deleted}, failed {len(self.failed)}, skipped {len(self.skipped)} "
            f"({self.chunks_written} chunks written, {self.chunks_embedded} embedded, in {self.seconds:.1f}s)"
            f"{context}"
        )


@dataclass(slots=True)
class _PendingFile:
    file: SourceFile
    content_hash: str
    is_new: bool
    replaces: str | None = None
    """The file's old absolute source id, replaced when its new record is committed."""


@dataclass(slots=True)
class _Batch:
    chunks: list[Chunk] = field(default_factory=list)
    done: list[SourceRecord] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)


URI_KEY = "uri"
"""The chunk metadata key holding the absolute ``file:`` URI of the file it came from."""


def uri_path(uri: object) -> Path | None:
    """The local path of a ``file:`` URI, else ``None``."""
    if not isinstance(uri, str) or not uri.startswith("file:"):
        return None
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parts.path))


def source_uris(store: VectorStore, records: Sequence[SourceRecord]) -> dict[str, str | None]:
    """The ``uri`` recorded in the chunks of each source (``None``: an upload, or none recorded).

    Reads the chunks of each record's first document (batched lookups; a
    store without the ``chunks_of_documents`` capability is read through).
    """
    first = {record.document_ids[0]: record.source for record in records if record.document_ids}
    found: dict[str, str | None] = {record.source: None for record in records}
    if not first:
        return found
    ids = list(first)
    batches: Iterator[list[Chunk]]
    if "chunks_of_documents" in capabilities_of(store):
        lookup = cast(DocumentChunks, store)
        batches = (lookup.chunks_of_documents(ids[i : i + 500]) for i in range(0, len(ids), 500))
    else:
        batches = store.iter_chunks(1000)
    for batch in batches:
        for chunk in batch:
            source = first.get(chunk.document_id)
            if source is not None and found.get(source) is None:
                uri = chunk.metadata.get(URI_KEY)
                found[source] = uri if isinstance(uri, str) else None
    return found


def file_hash(path: Path) -> str:
    """BLAKE2b-128 of a file's bytes, read in blocks (bounded memory)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class IngestPipeline:
    """Runs one collection's components over files; see the module docstring.

    ``chunk_headers``: embed each chunk prefixed with its title and heading
    path (the collection's ``chunk_headers`` option); ``None``: plain text.
    With ``chunk_headers.context`` the generator is built here (a bad
    generator config fails now, before anything is written), and its answers
    are cached in ``context_cache`` (default: ``<home>/cache/chunk-context.sqlite``
    when ``store.path`` is a collection's ``<home>/collections/NAME/store``,
    else no disk cache). ``destinations`` are written beside the store (see the module docstring).
    """

    def __init__(
        self,
        loaders: LoaderSet,
        splitter: Splitter,
        embedder: Embedder,
        store: VectorStore,
        batch_size: int = 256,
        progress: ProgressCallback | None = None,
        chunk_headers: ChunkHeaders | None = None,
        context_cache: Path | None = None,
        destinations: Sequence[IngestDestination] = (),
    ) -> None:
        self.loaders = loaders
        self.destinations = list(destinations)
        self.chunk_headers = chunk_headers
        self._context: ContextWriter | None = None
        self._documents: dict[str, tuple[str, str]] = {}
        """Document id -> (source, text) of the files in flight, for context sentences."""
        if chunk_headers is not None and chunk_headers.context is not None:
            from ragkit.chunk_context import ContextWriter, default_cache_path

            cache = context_cache if context_cache is not None else default_cache_path(store)
            self._context = ContextWriter(chunk_headers.context, cache)
        self.splitter = splitter
        self.embedder = embedder
        self.store = store
        self.batch_size = batch_size
        self.progress = progress or (lambda stage, done, total: None)
        self._written_sources: set[str] = set()
        self._record_uri = True

    def run(
        self, paths: Sequence[str | Path], sync: bool = False, source_prefix: str = "", record_uri: bool = True
    ) -> IngestReport:
        """Ingest ``paths`` (files or folders); with ``sync``, delete sources gone from them.

        Source ids are relative to each path (see the module docstring),
        after ``source_prefix``; ``record_uri=False`` leaves out the chunks'
        ``uri`` (for files whose path is nobody else's business, as uploads).
        """
        started = time.perf_counter()
        report = IngestReport()
        self._record_uri = record_uri
        files = list(discover(paths, self.loaders.options, source_prefix))
        pending = self._scan(files, report)
        stage = report.stage_seconds
        stage["scan"] = time.perf_counter() - started
        if pending:
            try:
                self._process(pending, report)
            finally:
                if self._context is not None:
                    self._context.close()
        if sync:
            t0 = time.perf_counter()
            self._delete_missing(paths, files, report)
            stage["sync"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.store.flush()
        stage["flush"] = time.perf_counter() - t0
        self._to_destinations(report, lambda d: d.flush())
        report.seconds = time.perf_counter() - started
        return report

    # -- deciding what to do ------------------------------------------------------

    def _scan(self, files: list[SourceFile], report: IngestReport) -> list[_PendingFile]:
        known = self.store.sources()
        supported = set(self.loaders.supported_suffixes())
        pending: list[_PendingFile] = []
        leftovers: list[str] = []
        for done, file in enumerate(files, 1):
            self.progress("scan", done, len(files))
            suffix = file.path.suffix.lower()
            if suffix not in supported:
                report.skipped.append(FileIssue(file.source, f"unsupported file type {suffix or '(no suffix)'}"))
                continue
            record = known.get(file.source)
            old = file.resolved if file.resolved != file.source and file.resolved in known else None
            if record is not None and old is not None:
                leftovers.append(old)  # a replacement cut short: the new record is in, the old one stayed
                old = None
            if record is not None and record.size == file.size and record.mtime == file.mtime:
                report.unchanged += 1
                continue
            try:
                digest = file_hash(file.path)
            except OSError as exc:
                report.failed.append(FileIssue(file.source, f"cannot read: {exc.strerror}"))
                continue
            if record is not None and record.content_hash == digest:
                report.unchanged += 1
                continue
            pending.append(_PendingFile(file, digest, record is None and old is None, old))
        self._check_owners([p for p in pending if p.file.source in known], known)
        if leftovers:
            report.chunks_deleted += self.store.delete_sources(leftovers)
            self._to_destinations(report, lambda d: d.delete_sources(leftovers))
        return pending

    def _check_owners(self, changed: list[_PendingFile], known: dict[str, SourceRecord]) -> None:
        """Refuse a file that would replace a source id another root's (or an upload's) file holds."""
        if not changed:
            return
        uris = source_uris(self.store, [known[p.file.source] for p in changed])
        for item in changed:
            file = item.file
            held = uris.get(file.source)
            mine = file.uri if self._record_uri else None
            if held == mine:
                continue
            held_path = uri_path(held)
            if held_path is not None and _same_file(held_path, file.path):
                continue  # the same file reached another way (a symbolic link to its folder)
            if held_path is not None and not held_path.exists():
                continue  # the file it named is gone (its folder moved): an update
            where = str(held_path) if held_path is not None else "an uploaded document"
            new = str(file.path) if self._record_uri else f"the uploaded file {file.path.name!r}"
            raise ConflictError(
                f"source id {file.source!r} is already taken by {where}; {new} would replace it. "
                "Give this root a different source prefix (--source-prefix, or source_prefix) "
                "or delete the other source first"
            )

    def _delete_missing(self, paths: Sequence[str | Path], files: list[SourceFile], report: IngestReport) -> None:
        """Delete the sources that came from ``paths`` (by their URI or old absolute id) and are no longer there."""
        present = {f.source for f in files} | {f.resolved for f in files}
        roots = [Path(p).expanduser().resolve() for p in paths]
        roots += [Path(os.path.abspath(Path(p).expanduser())) for p in paths]
        known = self.store.sources()
        absent = [record for source, record in known.items() if source not in present]
        # ids from before they were relative are absolute paths; the others are placed by their URI
        uris = source_uris(self.store, [r for r in absent if not r.source.startswith("/")])
        gone = []
        for record in absent:
            found = Path(record.source) if record.source.startswith("/") else uri_path(uris.get(record.source))
            if found is None:
                continue  # an upload, or a source another way recorded: not this root's
            places = {found.as_posix(), _resolved_or_same(found).as_posix()}
            if any(_is_under(place, root) for place in places for root in roots):
                gone.append(record.source)
        if gone:
            report.chunks_deleted += self.store.delete_sources(gone)
            self._to_destinations(report, lambda d: d.delete_sources(gone))
            report.deleted += len(gone)

    # -- the producer: load and split ------------------------------------------------

    def _produce(self, pending: list[_PendingFile], out: queue.Queue[Any]) -> None:
        try:
            for item in pending:
                out.put(("file", item, None))
                documents: dict[str, str] | None = {} if self._context is not None else None
                try:
                    for chunks in self._chunks_of(item.file, documents):
                        if documents:
                            out.put(("documents", item, dict(documents)))
                            documents.clear()
                        out.put(("chunks", item, chunks))
                except LoaderError as exc:
                    out.put(("failed", item, exc.reason))
                    continue
                except RagkitError as exc:
                    out.put(("failed", item, str(exc)))
                    continue
                out.put(("done", item, None))
            out.put(("end", None, None))
        except BaseException as exc:  # a bug: hand it to the consumer to raise
            out.put(("error", None, exc))

    def _chunks_of(self, file: SourceFile, documents: dict[str, str] | None = None) -> Iterator[list[Chunk]]:
        """The file's chunks in buffers; ``documents`` (when given) collects each document's text for contexts.

        A file that gives more than the loaders' ``max_chunks_per_file`` fails
        there with a :class:`LoaderError` naming the limit (the ingest goes on).
        """
        limit = self.loaders.limits.max_chunks_per_file
        count = 0
        buffer: list[Chunk] = []
        for document in self.loaders.load(file):
            if self._record_uri:
                document.metadata[URI_KEY] = file.uri
            else:
                document.metadata.pop(URI_KEY, None)
            chunks = self.splitter.split([document])
            count += len(chunks)
            if limit is not None and count > limit:
                raise LoaderError(
                    str(file.path),
                    f"the file gives more chunks than the max_chunks_per_file limit of {limit:,} "
                    "(split the file, or raise the limit if it is genuine)",
                )
            if documents is not None and chunks:
                documents[document.id] = document.text if document.text is not None else _joined(chunks)
            buffer.extend(chunks)
            if len(buffer) >= _FILE_CHUNK_BUFFER:
                yield buffer
                buffer = []
        yield buffer

    # -- the consumer: embed and store -------------------------------------------------

    def _process(self, pending: list[_PendingFile], report: IngestReport) -> None:
        channel: queue.Queue[Any] = queue.Queue(maxsize=64)
        producer = threading.Thread(target=self._produce, args=(pending, channel), name="ragkit-ingest", daemon=True)
        producer.start()
        records: dict[str, SourceRecord] = {}
        batch = _Batch()
        self._documents = {}
        files_done = 0
        embed_seconds = store_seconds = 0.0
        while True:
            kind, item, payload = channel.get()
            if kind == "error":
                raise payload
            if kind == "end":
                break
            source = item.file.source
            if kind == "documents":
                self._documents.update({doc_id: (source, text) for doc_id, text in payload.items()})
            elif kind == "file":
                records[source] = SourceRecord(source, item.content_hash, item.file.size, item.file.mtime, [], 0, [])
            elif kind == "chunks":
                record = records[source]
                for chunk in payload:
                    record.chunk_ids.append(chunk.id)
                    if chunk.document_id not in record.document_ids:
                        record.document_ids.append(chunk.document_id)
                record.chunk_count = len(record.chunk_ids)
                batch.chunks.extend(payload)
            elif kind in ("done", "failed"):
                files_done += 1
                self.progress("files", files_done, len(pending))
                record = records.pop(source)
                if kind == "failed":
                    batch.chunks = [c for c in batch.chunks if c.source != source]
                    report.failed.append(FileIssue(source, payload + self._discard_partial(item)))
                elif record.chunk_count == 0:
                    report.failed.append(FileIssue(source, "no text to index"))
                else:
                    batch.done.append(record)
                    if item.replaces is not None:
                        batch.replaced.append(item.replaces)
                    if item.is_new:
                        report.added += 1
                    else:
                        report.updated += 1
            if len(batch.chunks) >= self.batch_size or (kind == "done" and not batch.chunks and batch.done):
                e, s = self._write(batch, report)
                embed_seconds, store_seconds = embed_seconds + e, store_seconds + s
                batch = _Batch()
                # documents of finished files are no longer needed: all their chunks are written
                self._documents = {k: v for k, v in self._documents.items() if v[0] in records}
        e, s = self._write(batch, report)
        self._documents = {}
        report.stage_seconds["embed"] = embed_seconds + e
        report.stage_seconds["store"] = store_seconds + s
        producer.join()

    def _discard_partial(self, item: _PendingFile) -> str:
        """Undo what a file that failed half-way already wrote; returns a note for the report."""
        if item.file.source not in self._written_sources:
            return ""
        if item.is_new or item.replaces is not None:  # its new id has no record yet (an old one may stay)
            self.store.delete_sources([item.file.source])
            self._to_destinations(None, lambda d: d.delete_sources([item.file.source]))
            return ""
        # its previous version is kept (same ids, same text); new chunks stay until the next good ingest
        return " (its previous version is kept; chunks written before the failure stay until it ingests cleanly)"

    def _write(self, batch: _Batch, report: IngestReport) -> tuple[float, float]:
        embed_seconds = store_seconds = 0.0
        for start in range(0, len(batch.chunks), self.batch_size):
            part = batch.chunks[start : start + self.batch_size]
            contexts = self._contexts(part, report)
            t0 = time.perf_counter()
            misses_before = getattr(self.embedder, "misses", None)
            vectors = self.embedder.embed_documents([self._text_to_embed(c, contexts.get(c.id)) for c in part])
            t1 = time.perf_counter()
            misses_after = getattr(self.embedder, "misses", None)
            if isinstance(misses_before, int) and isinstance(misses_after, int):
                report.chunks_embedded += misses_after - misses_before
            else:
                report.chunks_embedded += len(part)
            self.store.upsert(part, vectors)
            self._written_sources.update(c.source for c in part)
            store_seconds += time.perf_counter() - t1
            self._to_destinations(report, functools.partial(_add, chunks=part))
            embed_seconds += t1 - t0
            report.chunks_written += len(part)
            self.progress("chunks", report.chunks_written, 0)
        if batch.done:
            t0 = time.perf_counter()
            self.store.commit_sources(batch.done)
            if batch.replaced:  # old absolute ids of the files just committed under relative ones
                report.chunks_deleted += self.store.delete_sources(batch.replaced)
            store_seconds += time.perf_counter() - t0
            self._to_destinations(report, lambda d: d.commit_sources(batch.done))
            if batch.replaced:
                self._to_destinations(report, lambda d: d.delete_sources(batch.replaced))
        return embed_seconds, store_seconds

    def _to_destinations(self, report: IngestReport | None, write: Callable[[IngestDestination], object]) -> None:
        """Apply ``write`` to every destination, adding the time to its stage in ``report``."""
        for destination in self.destinations:
            t0 = time.perf_counter()
            write(destination)
            if report is not None:
                stage = report.stage_seconds
                stage[destination.label] = stage.get(destination.label, 0.0) + time.perf_counter() - t0

    def _contexts(self, part: list[Chunk], report: IngestReport) -> dict[str, str]:
        """The model-written context sentence of each chunk of ``part`` that got one, by chunk id."""
        if self._context is None or not part:
            return {}
        from ragkit.chunk_context import context_items

        started = time.perf_counter()
        documents = {doc_id: text for doc_id, (_, text) in self._documents.items()}
        done = 0

        def on_done(result: Any) -> None:
            nonlocal done
            done += 1
            self.progress("context", report.context_written + report.context_failed + done, 0)

        results = self._context.write(context_items(part, documents), on_done)
        found: dict[str, str] = {}
        for chunk, result in zip(part, results, strict=True):
            report.context_calls += int(result.called)
            if result.sentence:
                found[chunk.id] = result.sentence
                report.context_written += 1
                continue
            report.context_failed += 1
            if len(report.context_failures) < _CONTEXT_FAILURES_KEPT:
                where = f"chunk at {chunk.start}-{chunk.end}"
                report.context_failures.append(FileIssue(chunk.source, f"{where}: {result.error or 'no sentence'}"))
        seconds = time.perf_counter() - started
        report.stage_seconds["context"] = report.stage_seconds.get("context", 0.0) + seconds
        return found

    def _text_to_embed(self, chunk: Chunk, context: str | None = None) -> str:
        """The chunk's text, prefixed with its header when headers are on (the prefix is kept in its metadata).

        ``context`` is the chunk's model-written sentence, if it got one.
        """
        if self.chunk_headers is None:
            return chunk.text
        prefix = self.chunk_headers.prefix(chunk.metadata, context)
        if not prefix:
            chunk.metadata.pop(CHUNK_HEADER_KEY, None)
            return chunk.text
        chunk.metadata[CHUNK_HEADER_KEY] = prefix
        return prefix + chunk.text


def _add(destination: IngestDestination, chunks: list[Chunk]) -> None:
    destination.add(chunks)


def _joined(chunks: list[Chunk]) -> str:
    """A document's text rebuilt from its chunks (for a loader that left ``document.text`` unset)."""
    return "\n".join(chunk.text for chunk in chunks)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a == b.absolute() or os.path.samefile(a, b)
    except OSError:
        return False


def _resolved_or_same(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def _is_under(source: str, root: Path) -> bool:
    root_text = root.as_posix()
    return source == root_text or source.startswith(root_text.rstrip("/") + "/")


__all__ = [
    "URI_KEY",
    "FileIssue",
    "IngestPipeline",
    "IngestReport",
    "ProgressCallback",
    "UnsupportedFileError",
    "file_hash",
    "source_uris",
    "uri_path",
]
