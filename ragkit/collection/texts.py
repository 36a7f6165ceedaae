"""Text held in memory, ingested through the same pipeline as files.

:meth:`Collection.add_texts <ragkit.collection.Collection.add_texts>` and
:meth:`~ragkit.collection.Collection.add_documents` come here. Each text (or
group of :class:`~ragkit.schema.Document` objects sharing a ``source``) is one
*source*, named by its id: the id *is* the source id, so ``source ==
"faq-12"`` filters it and :meth:`~ragkit.collection.Collection.delete_documents`
(or ``delete_sources``) removes it. It then goes through
:class:`~ragkit.ingest.IngestPipeline`'s own consumer: the collection's
splitter, embedder (and embedding cache), store, keyword index and chunk
headers, batched the same way. Only the producer differs: the documents come
from memory instead of a loader.

Incremental like files: a source's content hash covers its texts, document
ids and metadata, so adding the same text under the same id again costs
nothing (not even an embedding call), and a changed text or metadata
replaces the source's chunks (the new ones are written before the stale ones
are deleted). Without ids, an id is derived from the text and its metadata
(``text-<hash>``), so adding the same text twice stores it once.

A text's chunks carry its metadata (filterable) plus the splitter's own keys
(``chunk_index``, and ``section`` / ``headings`` where the text has Markdown
headings; empty ones are left out); they carry no ``uri``. An id that a file from disk holds
is refused (delete the file's source first).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ragkit.errors import ConflictError, InputError
from ragkit.hashing import content_hash, document_id
from ragkit.ingest import URI_KEY, IngestPipeline, IngestReport, ProgressCallback, _PendingFile, source_uris
from ragkit.loaders import SourceFile
from ragkit.schema import Chunk, Document

if TYPE_CHECKING:
    from ragkit.collection.core import Collection

RESERVED_KEYS = frozenset({"chunk_index", "chunk_header", URI_KEY})
"""Metadata keys ragkit sets on chunks itself; a text's own metadata may not use them."""

DocumentLike = Document | Mapping[str, Any]
"""A :class:`~ragkit.schema.Document` with text, or a dict with ``text`` (or ``page_content``), ``metadata``, ``id``."""

_DICT_KEYS = frozenset({"text", "page_content", "metadata", "id", "source"})


@dataclass(slots=True)
class TextSource:
    """One source held in memory: its id and its documents (each with text)."""

    source: str
    documents: list[Document]

    @property
    def content_hash(self) -> str:
        """A hash of the documents' ids, texts and metadata: unchanged means nothing to do."""
        parts = [[d.id, d.text, d.metadata] for d in self.documents]
        return content_hash(json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str))

    @property
    def size(self) -> int:
        """Characters held (recorded as the source's size)."""
        return sum(len(d.text or "") for d in self.documents)


def derived_id(text: str, metadata: Mapping[str, Any]) -> str:
    """The id a text gets when none is given: ``text-`` and a hash of the text and metadata."""
    digest = content_hash(json.dumps([text, dict(metadata)], sort_keys=True, ensure_ascii=False, default=str))
    return f"text-{digest}"


def _check_metadata(metadata: Any, where: str) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InputError(f"{where}: metadata must be a dict, got {type(metadata).__name__}")
    taken = sorted(RESERVED_KEYS & {str(k) for k in metadata})
    if taken:
        raise InputError(f"{where}: metadata key(s) {', '.join(taken)} are set by ragkit itself; rename them")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: metadata must be JSON-serialisable ({exc})") from None
    return {str(k): v for k, v in metadata.items()}


def _check_text(text: Any, where: str) -> str:
    if not isinstance(text, str):
        raise InputError(f"{where}: text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{where}: the text is empty; there is nothing to index")
    return text


def _check_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: an id must be a non-empty string, got {value!r}")
    return value


def text_sources(
    texts: Iterable[str], metadatas: Sequence[Mapping[str, Any] | None] | None, ids: Sequence[str | None] | None
) -> tuple[list[str], list[TextSource]]:
    """The ids (one per text, in order) and the sources to ingest (one per distinct id, the last text winning)."""
    texts = list(texts)
    for name, given in (("metadatas", metadatas), ("ids", ids)):
        if given is not None and len(given) != len(texts):
            raise InputError(f"add_texts: {len(texts)} texts but {len(given)} {name}")
    out_ids: list[str] = []
    sources: dict[str, TextSource] = {}
    for i, raw in enumerate(texts):
        where = f"texts[{i}]"
        text = _check_text(raw, where)
        metadata = _check_metadata(metadatas[i] if metadatas is not None else None, where)
        given = ids[i] if ids is not None else None
        source = derived_id(text, metadata) if given is None else _check_id(given, where)
        out_ids.append(source)
        sources[source] = TextSource(source, [Document(document_id(source), source, text, metadata=metadata)])
    return out_ids, list(sources.values())


def document_sources(documents: Iterable[DocumentLike]) -> tuple[list[str], list[TextSource]]:
    """The source id of each document (in order) and the sources to ingest.

    A ragkit :class:`~ragkit.schema.Document` keeps its ``source`` (documents
    sharing one form one source, as the pages of a file do) and its ``id``;
    a dict gives ``text`` (or ``page_content``), ``metadata`` and ``id`` (or
    ``source``), the id derived from the text when absent.
    """
    out_ids: list[str] = []
    grouped: dict[str, list[Document]] = {}
    for i, item in enumerate(documents):
        where = f"documents[{i}]"
        if isinstance(item, Document):
            text = _check_text(item.text, where)
            source = _check_id(item.source, where + ".source")
            metadata = _check_metadata(item.metadata, where)
            doc_id = item.id or document_id(f"{source}#{len(grouped.get(source, []))}")
            doc = Document(doc_id, source, text, None, metadata)
        elif isinstance(item, Mapping):
            unknown = sorted(set(item) - _DICT_KEYS)
            if unknown:
                raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; use text, metadata and id")
            text = _check_text(item.get("text", item.get("page_content")), where)
            metadata = _check_metadata(item.get("metadata"), where)
            given = item.get("id", item.get("source"))
            source = derived_id(text, metadata) if given is None else _check_id(given, where)
            grouped.pop(source, None)  # a dict is a whole source: the last one with an id wins
            doc = Document(document_id(source), source, text, metadata=metadata)
        else:
            raise InputError(f"{where}: expected a ragkit Document or a dict, got {type(item).__name__}")
        out_ids.append(source)
        group = grouped.setdefault(source, [])
        if any(d.id == doc.id for d in group):
            raise InputError(f"{where}: document id {doc.id!r} appears twice in source {source!r}")
        group.append(doc)
    return out_ids, [TextSource(source, docs) for source, docs in grouped.items()]


class TextIngestPipeline(IngestPipeline):
    """An :class:`~ragkit.ingest.IngestPipeline` whose documents come from memory (see the module docstring)."""

    def run_sources(self, sources: Sequence[TextSource]) -> IngestReport:
        """Ingest ``sources``: unchanged ones are skipped, changed ones replaced, new ones added."""
        import time

        started = time.perf_counter()
        report = IngestReport()
        self._record_uri = False
        self._held = {s.source: s for s in sources}
        known = self.store.sources()
        pending: list[_PendingFile] = []
        for item in sources:
            digest = item.content_hash
            record = known.get(item.source)
            if record is not None and record.content_hash == digest:
                report.unchanged += 1
                continue
            file = SourceFile(Path(item.source), item.source, item.size, 0.0)
            pending.append(_PendingFile(file, digest, record is None))
        self._refuse_files([p.file.source for p in pending if p.file.source in known], known)
        report.stage_seconds["scan"] = time.perf_counter() - started
        if pending:
            try:
                self._process(pending, report)
            finally:
                if self._context is not None:
                    self._context.close()
        t0 = time.perf_counter()
        self.store.flush()
        report.stage_seconds["flush"] = time.perf_counter() - t0
        self._to_destinations(report, lambda d: d.flush())
        report.seconds = time.perf_counter() - started
        return report

    def _refuse_files(self, changed: list[str], known: Mapping[str, Any]) -> None:
        """Refuse an id that a file ingested from disk holds (its chunks carry a ``file:`` URI)."""
        if not changed:
            return
        uris = source_uris(self.store, [known[s] for s in changed])
        for source in changed:
            if uris.get(source) is not None:
                raise ConflictError(
                    f"id {source!r} is already taken by the file {uris[source]}; "
                    "choose another id or delete that source first"
                )

    def _chunks_of(self, file: SourceFile, documents: dict[str, str] | None = None) -> Iterator[list[Chunk]]:
        """The chunks of the held source named ``file.source`` (split by the collection's splitter)."""
        held = self._held[file.source]
        chunks = self.splitter.split([Document(d.id, d.source, d.text, None, dict(d.metadata)) for d in held.documents])
        own = {d.id: d.metadata for d in held.documents}
        for chunk in chunks:
            _drop_empty_additions(chunk.metadata, own[chunk.document_id])
        if documents is not None:
            documents.update({d.id: d.text or "" for d in held.documents})
        yield chunks


def _drop_empty_additions(metadata: dict[str, Any], own: Mapping[str, Any]) -> None:
    """Leave out the empty keys a splitter adds (``headings: []``, ``section: ""``); the text's own values win."""
    for key in [k for k, v in metadata.items() if v in ("", [], None) and k != "chunk_index"]:
        if key in own:
            metadata[key] = own[key]
        else:
            del metadata[key]


def ingest_sources(
    collection: Collection, sources: Sequence[TextSource], progress: ProgressCallback | None = None
) -> IngestReport:
    """Ingest held ``sources`` into ``collection`` under its writer lock, keeping its keyword index in step."""
    return collection._run_ingest(TextIngestPipeline, lambda pipeline: pipeline.run_sources(sources), progress)


def documents_by_id(collection: Collection, ids: Sequence[str]) -> list[Document]:
    """The documents stored under the source ids ``ids`` (unknown ids left out), texts rebuilt from their chunks.

    A text kept in one chunk comes back exactly; one that was split comes back
    with the whitespace between its chunks as spaces (offsets are kept).
    Metadata is the first chunk's, without ragkit's own keys (:data:`RESERVED_KEYS`).
    """
    from ragkit.protocols import DocumentChunks, capabilities_of

    store = collection.store
    known = store.sources()
    wanted = [known[i] for i in dict.fromkeys(ids) if i in known]
    doc_ids = [d for record in wanted for d in record.document_ids]
    if not doc_ids:
        return []
    if "chunks_of_documents" in capabilities_of(store):
        chunks = cast(DocumentChunks, store).chunks_of_documents(doc_ids)
    else:
        targets = set(doc_ids)
        chunks = [c for batch in store.iter_chunks(1000) for c in batch if c.document_id in targets]
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.document_id, []).append(chunk)
    out: list[Document] = []
    for record in wanted:
        for doc_id in record.document_ids:
            parts = sorted(by_doc.get(doc_id, []), key=lambda c: (c.start, c.end))
            if parts:
                out.append(_rebuilt(doc_id, record.source, parts))
    return out


def _rebuilt(doc_id: str, source: str, chunks: list[Chunk]) -> Document:
    text = ""
    for chunk in chunks:
        if chunk.start > len(text):
            text += " " * (chunk.start - len(text))
        if chunk.end > len(text):
            text = text[: chunk.start] + chunk.text
    metadata = {k: v for k, v in chunks[0].metadata.items() if k not in RESERVED_KEYS}
    return Document(doc_id, source, text, None, metadata)


__all__ = [
    "RESERVED_KEYS",
    "DocumentLike",
    "TextIngestPipeline",
    "TextSource",
    "derived_id",
    "document_sources",
    "documents_by_id",
    "ingest_sources",
    "text_sources",
]
