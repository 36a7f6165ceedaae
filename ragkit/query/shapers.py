"""Built-in context shaper stages: ``parent-document``, ``sentence-window``, ``compress`` and ``dedupe``.

Shapers run last, on the final hits, and change what each hit *shows*:

- ``parent-document`` (retrieve small, pass big) replaces each hit by its
  parent: its whole section, or a window of ``parent_chars`` around it;
  hits that share a parent collapse into one.
- ``sentence-window`` widens each hit to whole sentences plus ``window``
  sentences either side.
- ``compress`` keeps only the sentences of each hit that are relevant to the
  question (by the collection's embedder, or by word overlap).
- ``dedupe`` removes near-duplicate hits (the same text ingested twice).

The citation rule: a shaped hit's ``chunk.start``/``chunk.end`` is always a
true span of its document. Expanding shapers stitch the new text from the
document's stored chunks (:func:`chunks_of_documents`), so their text is the
document's text over the new span and their chunk gets a new stable id
(:func:`ragkit.hashing.chunk_id` of that span and text). The one exception
is a stretch no chunk holds (whitespace the splitter trimmed between two
chunks): it is filled with whitespace of the same length, so every
character a chunk holds stays at its true offset, and the stretch is listed
in ``metadata["gaps"]``. ``compress`` shows a selection of sentences; its
hit keeps the original chunk's span (which holds every kept sentence), sets
``metadata["compressed"] = True`` and lists the exact document offsets of
the kept sentences in ``metadata["kept_spans"]``.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ragkit.errors import ConfigError
from ragkit.hashing import chunk_id, content_hash
from ragkit.options import check_int
from ragkit.protocols import DocumentChunks, capabilities_of
from ragkit.query.stages import ContextShaperStage
from ragkit.query.state import QueryState
from ragkit.registry import register
from ragkit.schema import Chunk, Hit
from ragkit.splitters.sentence import sentence_spans

if TYPE_CHECKING:
    from ragkit.collection import Collection
    from ragkit.protocols import VectorStore

log = logging.getLogger(__name__)

PARENT_SCOPES = ("section", "window")
COMPRESS_METHODS = ("embedding", "overlap")
DEFAULT_MIN_SIMILARITY = {"embedding": 0.3, "overlap": 0.3}
"""``min_similarity`` of ``compress`` when none is given, per method."""
_WORD = re.compile(r"\w+")
_STOP_WORDS = """
    a an and are as at be been but by can could did do does for from had has have how i if in into is it its
    of on or that the their them then there these they this to was were what when where which who whom whose why
    will with would you your
"""
_STOP = frozenset(_STOP_WORDS.split())


# -- documents as their chunks hold them ------------------------------------------------------


def chunks_of_documents(store: VectorStore, document_ids: Sequence[str]) -> list[Chunk]:
    """Every stored chunk of these documents, by document in the order given, then by ``start``.

    Uses the store's own ``chunks_of_documents`` when it declares that
    capability (one indexed query in the built-in stores); any other store is
    scanned once through ``iter_chunks``.
    """
    if "chunks_of_documents" in capabilities_of(store):
        return list(cast(DocumentChunks, store).chunks_of_documents(list(document_ids)))
    log.debug(
        "store %s declares no chunks_of_documents capability: scanning iter_chunks() for %d document(s)",
        type(store).__name__,
        len(document_ids),
    )
    order = {doc_id: i for i, doc_id in enumerate(dict.fromkeys(document_ids))}
    found = [chunk for batch in store.iter_chunks() for chunk in batch if chunk.document_id in order]
    found.sort(key=lambda c: (order[c.document_id], c.start, c.end, c.id))
    return found


def _filler(length: int) -> str:
    """Whitespace standing in for ``length`` characters no chunk holds (a space, else line breaks)."""
    return " " if length == 1 else "\n" * length


@dataclass(slots=True)
class DocumentText:
    """One document's text as far as its stored chunks hold it, stitched by offsets.

    ``text`` runs from ``start`` (the first chunk's start) to the last
    chunk's end; where chunks overlap the overlap appears once, and each
    stretch no chunk holds is filled with whitespace and listed in ``gaps``.
    So ``text[c.start - start : c.end - start] == c.text`` for every chunk.
    """

    document_id: str
    chunks: list[Chunk]
    """The document's chunks by ``start``."""
    start: int
    text: str
    gaps: list[tuple[int, int]]
    _sentences: list[tuple[int, int]] | None = field(default=None, repr=False)

    @classmethod
    def stitch(cls, document_id: str, chunks: Iterable[Chunk]) -> DocumentText:
        """Stitch a document's chunks (any order) into its text."""
        ordered = sorted({c.id: c for c in chunks}.values(), key=lambda c: (c.start, c.end))
        if not ordered:
            return cls(document_id, [], 0, "", [])
        pieces: list[str] = []
        gaps: list[tuple[int, int]] = []
        cursor = ordered[0].start
        for chunk in ordered:
            if chunk.end <= cursor:
                continue  # inside what earlier chunks hold
            if chunk.start > cursor:
                gaps.append((cursor, chunk.start))
                pieces.append(_filler(chunk.start - cursor))
                pieces.append(chunk.text)
            else:
                pieces.append(chunk.text[cursor - chunk.start :])
            cursor = chunk.end
        return cls(document_id, ordered, ordered[0].start, "".join(pieces), gaps)

    @property
    def end(self) -> int:
        """The offset after the last character held."""
        return self.start + len(self.text)

    def covers(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` lies within the stitched text."""
        return bool(self.chunks) and self.start <= start <= end <= self.end

    def slice(self, start: int, end: int) -> str:
        """The document's text over ``[start, end)`` (document offsets)."""
        return self.text[start - self.start : end - self.start]

    def gaps_in(self, start: int, end: int) -> list[list[int]]:
        """The filled stretches that overlap ``[start, end)``, clipped to it."""
        return [[max(a, start), min(b, end)] for a, b in self.gaps if a < end and start < b]

    def sentences(self) -> list[tuple[int, int]]:
        """The document's sentence spans (document offsets), found once and kept."""
        if self._sentences is None:
            self._sentences = [(a + self.start, b + self.start) for a, b in sentence_spans(self.text)]
        return self._sentences

    def run_of(self, hit_chunk: Chunk) -> tuple[int, int]:
        """``(lo, hi)``: the extent of the section holding ``hit_chunk`` (consecutive chunks, same heading path).

        A document whose chunks carry no ``headings``/``section`` is one section.
        """
        key = section_key(hit_chunk)
        index = next((i for i, c in enumerate(self.chunks) if c.id == hit_chunk.id), None)
        if index is None:  # a hit shaped before: find a chunk it overlaps
            index = next(
                (i for i, c in enumerate(self.chunks) if c.start < hit_chunk.end and hit_chunk.start < c.end), 0
            )
        first = last = index
        while first > 0 and section_key(self.chunks[first - 1]) == key:
            first -= 1
        while last + 1 < len(self.chunks) and section_key(self.chunks[last + 1]) == key:
            last += 1
        lo = min(self.chunks[first].start, hit_chunk.start)
        hi = max(max(c.end for c in self.chunks[first : last + 1]), hit_chunk.end)
        return lo, hi

    def snap(self, start: int, end: int, core: tuple[int, int]) -> tuple[int, int]:
        """``[start, end)`` moved inwards off cut words and whitespace.

        The start never moves past ``core[0]``, the end never before ``core[1]``.
        """
        text, base = self.text, self.start
        i, j = start - base, end - base
        a, b = core[0] - base, core[1] - base
        if 0 < i < a and not text[i - 1].isspace() and not text[i].isspace():
            while i < a and not text[i].isspace():
                i += 1
        while i < a and text[i].isspace():
            i += 1
        if b < j < len(text) and not text[j - 1].isspace() and not text[j].isspace():
            while j > b and not text[j - 1].isspace():
                j -= 1
        while j > b and text[j - 1].isspace():
            j -= 1
        return i + base, j + base


def section_key(chunk: Chunk) -> Any:
    """What makes two chunks of a document one section: their heading path (``None`` when they have none)."""
    headings = chunk.metadata.get("headings")
    if isinstance(headings, list):
        return tuple(str(h) for h in headings)
    section = chunk.metadata.get("section")
    return section if isinstance(section, str) else None


def load_documents(states: Sequence[QueryState]) -> dict[tuple[int, str], DocumentText]:
    """The stitched text of every document a hit of ``states`` comes from, by ``(id(collection), document_id)``.

    One store call per collection for the whole batch.
    """
    wanted: dict[int, tuple[Collection, dict[str, None]]] = {}
    for state in states:
        ids = wanted.setdefault(id(state.collection), (state.collection, {}))[1]
        ids.update(dict.fromkeys(hit.chunk.document_id for hit in state.hits))
    documents: dict[tuple[int, str], DocumentText] = {}
    for key, (collection, ids) in wanted.items():
        if not ids:
            continue
        grouped: dict[str, list[Chunk]] = {}
        for chunk in chunks_of_documents(collection.store, list(ids)):
            grouped.setdefault(chunk.document_id, []).append(chunk)
        for doc_id, chunks in grouped.items():
            documents[(key, doc_id)] = DocumentText.stitch(doc_id, chunks)
    return documents


def shaped_chunk(template: Chunk, start: int, end: int, text: str, extra: dict[str, Any]) -> Chunk:
    """A chunk of ``template``'s document over ``[start, end)`` showing ``text``, with a stable id of its own."""
    metadata = {k: v for k, v in template.metadata.items() if k != "chunk_index"}
    metadata.update(extra)
    text_hash = content_hash(text)
    return Chunk(
        id=chunk_id(template.document_id, start, end, text_hash),
        document_id=template.document_id,
        source=template.source,
        text=text,
        start=start,
        end=end,
        metadata=metadata,
        content_hash=text_hash,
    )


# -- shared parts of the stages -----------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    """One output hit of an expanding shaper while it is being built."""

    hit: Hit
    """The best-ranked hit it came from."""
    document: DocumentText | None
    start: int
    end: int
    children: list[str]
    scores: dict[str, float]
    ranks: dict[str, int]

    @classmethod
    def of(cls, hit: Hit, document: DocumentText | None, start: int, end: int) -> _Block:
        return cls(hit, document, start, end, [hit.chunk.id], dict(hit.scores), dict(hit.ranks))

    def absorb(self, hit: Hit) -> None:
        """Take in a lower-ranked hit that this block already shows: its best scores and ranks are kept."""
        self.children.append(hit.chunk.id)
        for label, score in hit.scores.items():
            if label not in self.scores or score > self.scores[label]:
                self.scores[label] = score
        for label, rank in hit.ranks.items():
            if label not in self.ranks or rank < self.ranks[label]:
                self.ranks[label] = rank


class _ExpandingShaper(ContextShaperStage):
    """Base of the shapers that widen each hit from its document's chunks, merging hits that meet."""

    def note(self, state: QueryState, text: str) -> None:
        """Add ``text`` to this stage's trace entry of ``state`` (when the pipeline is tracing)."""
        if state.trace and state.trace[-1].stage == self.label:
            state.trace[-1].notes.append(text)

    def span_for(self, document: DocumentText, hit: Hit) -> tuple[int, int] | None:
        """The widened span of ``hit`` before it meets the other blocks (``None``: keep the hit as it is)."""
        raise NotImplementedError

    def metadata_for(self, block: _Block) -> dict[str, Any]:
        """What the shaped chunk adds to the metadata it inherits from the best hit."""
        raise NotImplementedError

    def shape_many(self, states: Sequence[QueryState]) -> list[list[Hit]]:
        """Each question's hits widened, hits inside another's widened span merged into it."""
        documents = load_documents(states)
        out: list[list[Hit]] = []
        for state in states:
            blocks: list[_Block] = []
            missing = merged = 0
            for hit in state.hits:
                chunk = hit.chunk
                document = documents.get((id(state.collection), chunk.document_id))
                if document is None or not document.covers(chunk.start, chunk.end):
                    missing += 1
                    blocks.append(_Block.of(hit, None, chunk.start, chunk.end))
                    continue
                owner = self._owner(blocks, document, chunk.start, chunk.end)
                span = None if owner is not None else self.span_for(document, hit)
                if owner is None and span is None:
                    blocks.append(_Block.of(hit, None, chunk.start, chunk.end))
                    continue
                if span is not None:
                    start, end = span
                    for other in blocks:  # never show text twice: stop where a better block is
                        if other.document is not document or other.end <= start or end <= other.start:
                            continue
                        if other.start <= chunk.start:
                            start = max(start, other.end)
                        else:
                            end = min(end, other.start)
                    if start < end:
                        # keep the hit's words whole; an edge clipped into its chunk may move off a cut word
                        keep = (chunk.start if start <= chunk.start else end, chunk.end if end >= chunk.end else start)
                        start, end = document.snap(start, end, keep)
                    if start >= end:  # squeezed out between better blocks
                        owner = max(
                            (b for b in blocks if b.document is document),
                            key=lambda b: min(b.end, chunk.end) - max(b.start, chunk.start),
                        )
                if owner is not None:
                    owner.absorb(hit)
                    merged += 1
                    continue
                blocks.append(_Block.of(hit, document, start, end))
            out.append([self._finish(block, rank) for rank, block in enumerate(blocks, 1)])
            self.note(state, self.summary(len(state.hits), len(blocks), merged, missing))
        return out

    def summary(self, hits: int, blocks: int, merged: int, missing: int) -> str:
        """The trace note of one question."""
        raise NotImplementedError

    @staticmethod
    def _owner(blocks: list[_Block], document: DocumentText, start: int, end: int) -> _Block | None:
        """The first block of ``document`` holding more than half of ``[start, end)`` (then the hit merges into it)."""
        for block in blocks:
            if block.document is document and 2 * (min(block.end, end) - max(block.start, start)) > end - start:
                return block
        return None

    def _finish(self, block: _Block, rank: int) -> Hit:
        hit, document = block.hit, block.document
        ranks = {**block.ranks, self.label: rank}
        chunk = hit.chunk
        if document is not None and ((block.start, block.end) != (chunk.start, chunk.end) or len(block.children) > 1):
            extra = self.metadata_for(block)
            gaps = document.gaps_in(block.start, block.end)
            if gaps:
                extra["gaps"] = gaps
            chunk = shaped_chunk(chunk, block.start, block.end, document.slice(block.start, block.end), extra)
        return Hit(chunk, hit.score, hit.origin, block.scores, ranks)


def _window(core: tuple[int, int], lo: int, hi: int, budget: int | None) -> tuple[int, int]:
    """The span of at most ``budget`` characters within ``[lo, hi)`` centred on ``core`` (never smaller than it)."""
    a, b = core
    if budget is None or hi - lo <= budget:
        return lo, hi
    if b - a >= budget:
        return a, b
    start = max(lo, a - (budget - (b - a)) // 2)
    end = min(hi, start + budget)
    return max(lo, end - budget), end


# -- parent-document ---------------------------------------------------------------------------


@register("context_shaper", "parent-document")
class ParentDocumentShaper(_ExpandingShaper):
    """Retrieve small, pass big: each hit is replaced by its parent, stitched from its document's chunks.

    ``scope: section`` makes the parent the hit's whole section (the
    consecutive chunks of its document with the same heading path; the
    whole document when its chunks have no headings); ``scope: window``
    makes it ``parent_chars`` characters centred on the hit, cut at word
    boundaries. ``max_chars`` caps a parent (a longer section becomes a
    window of ``max_chars`` around the hit; ``null`` for no cap). Hits
    whose chunk lies in a better hit's parent collapse into it: the best
    score is kept and the scores and ranks of all merge (the best of
    each). ``metadata["parent_of"]`` lists the chunk ids of the hits a
    parent stands for.

    Args:
        scope: ``section`` or ``window``.
        parent_chars: Length of a ``window`` parent, in characters.
        max_chars: The longest parent, in characters (``None``: no cap).

    """

    def __init__(self, scope: str = "section", parent_chars: int = 2000, max_chars: int | None = 4000) -> None:
        if scope not in PARENT_SCOPES:
            raise ConfigError(
                f"context shaper 'parent-document': scope must be one of {', '.join(PARENT_SCOPES)}, got {scope!r}"
            )
        check_int("context shaper 'parent-document'", "parent_chars", parent_chars, 1, wording="must")
        if max_chars is not None:
            check_int("context shaper 'parent-document'", "max_chars", max_chars, 1, wording="must")
        if scope == "window" and max_chars is not None and parent_chars > max_chars:
            raise ConfigError(
                f"context shaper 'parent-document': parent_chars ({parent_chars}) is larger than "
                f"max_chars ({max_chars})"
            )
        self.scope = scope
        self.parent_chars = parent_chars
        self.max_chars = max_chars

    def span_for(self, document: DocumentText, hit: Hit) -> tuple[int, int] | None:
        """The hit's section (or ``document``'s extent, for a window), cut to the budget around the hit."""
        core = (hit.chunk.start, hit.chunk.end)
        if self.scope == "section":
            lo, hi = document.run_of(hit.chunk)
            return _window(core, lo, hi, self.max_chars)
        budget = self.parent_chars if self.max_chars is None else min(self.parent_chars, self.max_chars)
        return _window(core, document.start, document.end, budget)

    def metadata_for(self, block: _Block) -> dict[str, Any]:
        """``parent_of``: the hits' chunk ids; ``parent_scope``: section or window."""
        return {"parent_of": list(block.children), "parent_scope": self.scope}

    def summary(self, hits: int, blocks: int, merged: int, missing: int) -> str:
        """E.g. ``3 hits expanded to 2 parents (section, at most 4000 chars)``."""
        budget = self.max_chars if self.scope == "section" else self.parent_chars
        how = self.scope if budget is None else f"{self.scope}, at most {budget} chars"
        note = f"{hits} hit{'s' * (hits != 1)} expanded to {blocks - missing} parent{'s' * (blocks - missing != 1)}"
        note += f" ({how})"
        if merged:
            note += f"; {merged} shared a better hit's parent and merged into it"
        if missing:
            note += f"; {missing} kept as they were (their document's chunks are not in the store)"
        return note


# -- sentence-window ---------------------------------------------------------------------------


@register("context_shaper", "sentence-window")
class SentenceWindowShaper(_ExpandingShaper):
    """Each hit widened to whole sentences, plus ``window`` sentences either side.

    The sentences come from the neighbouring chunks of the same document
    (sentences found by the rule-based splitter of the ``sentence``
    splitter). With ``within_section`` the window stops at the hit's
    section. ``max_chars`` drops the outermost extra sentences until the
    window fits (the hit's own sentences are always kept). A hit already
    inside a better hit's window merges into it. ``metadata["window_of"]``
    lists the chunk ids of the hits a window stands for.

    Args:
        window: Sentences added before and after the hit's own.
        max_chars: The longest window, in characters (``None``: no cap).
        within_section: Do not take sentences from another section of the document.

    """

    def __init__(self, window: int = 1, max_chars: int | None = None, within_section: bool = True) -> None:
        check_int("context shaper 'sentence-window'", "window", window, 0, wording="must")
        if max_chars is not None:
            check_int("context shaper 'sentence-window'", "max_chars", max_chars, 1, wording="must")
        if not isinstance(within_section, bool):
            raise ConfigError(
                f"context shaper 'sentence-window': within_section must be true or false, got {within_section!r}"
            )
        self.window = window
        self.max_chars = max_chars
        self.within_section = within_section

    def span_for(self, document: DocumentText, hit: Hit) -> tuple[int, int] | None:
        """The hit's sentences and ``window`` more on each side, as a document span."""
        a, b = hit.chunk.start, hit.chunk.end
        sentences = document.sentences()
        inside = [i for i, (s, e) in enumerate(sentences) if s < b and a < e]
        if not inside:
            return None
        first, last = inside[0], inside[-1]
        lo, hi = document.run_of(hit.chunk) if self.within_section else (document.start, document.end)
        for _ in range(self.window):
            if first > 0 and sentences[first - 1][0] >= lo:
                first -= 1
            if last + 1 < len(sentences) and sentences[last + 1][1] <= hi:
                last += 1
        core_first, core_last = inside[0], inside[-1]
        while self.max_chars is not None and (first < core_first or last > core_last):
            if max(sentences[last][1], b) - min(sentences[first][0], a) <= self.max_chars:
                break
            if last > core_last and (last - core_last >= core_first - first):
                last -= 1
            else:
                first += 1
        start, end = min(sentences[first][0], a), max(sentences[last][1], b)
        if self.within_section:
            start, end = max(start, min(lo, a)), min(end, max(hi, b))
        return start, end

    def metadata_for(self, block: _Block) -> dict[str, Any]:
        """``window_of``: the hits' chunk ids; ``window``: sentences added either side."""
        return {"window_of": list(block.children), "window": self.window}

    def summary(self, hits: int, blocks: int, merged: int, missing: int) -> str:
        """E.g. ``4 hits widened to 3 sentence windows (+-1 sentences)``."""
        note = f"{hits} hit{'s' * (hits != 1)} widened to {blocks - missing} sentence window"
        note += f"{'s' * (blocks - missing != 1)} (+-{self.window} sentences)"
        if merged:
            note += f"; {merged} lay in a better hit's window and merged into it"
        if missing:
            note += f"; {missing} kept as they were (their document's chunks are not in the store)"
        return note


# -- compress ------------------------------------------------------------------------------------


def content_words(text: str) -> set[str]:
    """Lower-cased words of ``text`` without stop words and one-letter words, plurals folded (``trees`` -> ``tree``)."""
    words = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOP or len(word) < 2:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.add(word)
    return words


@register("context_shaper", "compress")
class CompressShaper(ContextShaperStage):
    """Extractive compression: each hit keeps only its sentences relevant to the question.

    ``method: embedding`` scores a sentence by the cosine similarity of its
    vector and the question's (the collection's embedder; one call for the
    questions and one for every sentence of the batch); ``method: overlap``
    by the share of the question's content words the sentence contains.
    A sentence is kept when it scores at least ``min_similarity`` (default
    0.3 for either method). A hit that keeps some sentences keeps at least
    ``keep_at_least`` (its best ones); a hit left with none is dropped,
    except the best-ranked hit, which keeps its best ``keep_at_least``.

    The kept sentences are shown in document order, joined by `` … ``
    where sentences were left out. The hit keeps its original chunk's span
    (which holds every kept sentence), so a citation still points at a true
    span; ``metadata["compressed"]`` is true, ``metadata["kept_spans"]``
    holds the document offsets of the kept sentences and
    ``metadata["compressed_from"]`` the original chunk id. The best
    sentence's score is recorded in the hit's ``scores`` under this stage's
    label; ``score`` and the order are unchanged.

    Args:
        method: ``embedding`` or ``overlap``.
        min_similarity: Keep sentences scoring at least this.
        keep_at_least: Sentences a kept hit shows at least.

    """

    def __init__(self, method: str = "embedding", min_similarity: float | None = None, keep_at_least: int = 1) -> None:
        if method not in COMPRESS_METHODS:
            raise ConfigError(
                f"context shaper 'compress': method must be one of {', '.join(COMPRESS_METHODS)}, got {method!r}"
            )
        if min_similarity is not None:
            low = -1.0 if method == "embedding" else 0.0
            if (
                isinstance(min_similarity, bool)
                or not isinstance(min_similarity, (int, float))
                or math.isnan(min_similarity)
                or not low <= min_similarity <= 1
            ):
                raise ConfigError(
                    f"context shaper 'compress': min_similarity must lie in [{low:g}, 1] for method {method!r}, "
                    f"got {min_similarity!r}"
                )
        check_int("context shaper 'compress'", "keep_at_least", keep_at_least, 1, wording="must")
        self.method = method
        self.min_similarity = min_similarity
        self.keep_at_least = keep_at_least

    @property
    def threshold(self) -> float:
        """The ``min_similarity`` in force."""
        return DEFAULT_MIN_SIMILARITY[self.method] if self.min_similarity is None else float(self.min_similarity)

    def note(self, state: QueryState, text: str) -> None:
        """Add ``text`` to this stage's trace entry of ``state`` (when the pipeline is tracing)."""
        if state.trace and state.trace[-1].stage == self.label:
            state.trace[-1].notes.append(text)

    def sentence_scores(
        self, states: Sequence[QueryState], sentences: Sequence[Sequence[Sequence[str]]]
    ) -> list[list[list[float]]]:
        """The score of every sentence (``sentences[state][hit][i]``) against its state's question."""
        if self.method == "overlap":
            out = []
            for state, per_hit in zip(states, sentences, strict=True):
                question = content_words(state.question)
                out.append(
                    [
                        [len(question & content_words(s)) / len(question) if question else 1.0 for s in texts]
                        for texts in per_hit
                    ]
                )
            return out
        scores: list[list[list[float]]] = [[[] for _ in per_hit] for per_hit in sentences]
        groups: dict[int, list[int]] = {}
        for index, state in enumerate(states):
            groups.setdefault(id(state.collection), []).append(index)
        for members in groups.values():
            unique = list(dict.fromkeys(s for i in members for texts in sentences[i] for s in texts))
            if not unique:
                continue
            embedder = states[members[0]].collection.embedder
            questions = _normalised(embedder.embed_queries([states[i].question for i in members]))
            vectors = _normalised(embedder.embed_documents(unique))
            row = {text: n for n, text in enumerate(unique)}
            similarity = questions @ vectors.T
            for q, i in enumerate(members):
                scores[i] = [[float(similarity[q, row[s]]) for s in texts] for texts in sentences[i]]
        return scores

    def shape_many(self, states: Sequence[QueryState]) -> list[list[Hit]]:
        """Each question's hits cut down to their relevant sentences; hits with none dropped (not the best)."""
        spans = [[sentence_spans(hit.chunk.text) for hit in state.hits] for state in states]
        texts = [
            [[hit.chunk.text[a:b] for a, b in hit_spans] for hit, hit_spans in zip(state.hits, per_hit, strict=True)]
            for state, per_hit in zip(states, spans, strict=True)
        ]
        scored = self.sentence_scores(states, texts)
        floor = self.threshold
        out = []
        for state, per_hit, per_scores in zip(states, spans, scored, strict=True):
            shaped: list[Hit] = []
            total = kept_count = dropped = 0
            for position, (hit, hit_spans, scores) in enumerate(zip(state.hits, per_hit, per_scores, strict=True)):
                total += len(hit_spans)
                if not hit_spans:
                    shaped.append(hit)
                    continue
                ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
                keep = {i for i in ranked if scores[i] >= floor}
                if not keep and position > 0:
                    dropped += 1
                    continue
                if len(keep) < self.keep_at_least:
                    keep.update(ranked[: self.keep_at_least])
                kept_count += len(keep)
                shaped.append(self._compressed(hit, hit_spans, sorted(keep), max(scores)))
            note = (
                f"kept {kept_count} of {total} sentences (min_similarity {floor:g}, {self.method}) "
                f"in {len(shaped)} of {len(state.hits)} hits"
            )
            if dropped:
                note += f"; dropped {dropped} hit{'s' * (dropped != 1)} with no sentence that relevant"
            self.note(state, note)
            out.append(shaped)
        return out

    def _compressed(self, hit: Hit, spans: list[tuple[int, int]], keep: list[int], best: float) -> Hit:
        scores = {**hit.scores, self.label: best}
        chunk = hit.chunk
        if len(keep) < len(spans):
            text = chunk.text
            parts = [text[spans[keep[0]][0] : spans[keep[0]][1]]]
            for before, index in itertools.pairwise(keep):
                between = text[spans[before][1] : spans[index][0]] if index == before + 1 else " … "
                parts.append(between + text[spans[index][0] : spans[index][1]])
            new_text = "".join(parts)
            text_hash = content_hash(new_text)
            metadata = {
                **chunk.metadata,
                "compressed": True,
                "kept_spans": [[chunk.start + spans[i][0], chunk.start + spans[i][1]] for i in keep],
                "compressed_from": chunk.id,
            }
            chunk = replace(
                chunk,
                id=chunk_id(chunk.document_id, chunk.start, chunk.end, text_hash),
                text=new_text,
                metadata=metadata,
                content_hash=text_hash,
            )
        return Hit(chunk, hit.score, hit.origin, scores, dict(hit.ranks))


def _normalised(vectors: Any) -> np.ndarray:
    array = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.asarray(array / np.where(norms == 0, 1.0, norms), dtype=np.float32)


# -- dedupe --------------------------------------------------------------------------------------


def shingles(text: str, size: int) -> set[tuple[str, ...]]:
    """The word ``size``-grams of ``text`` (lower-cased words; the whole text when it is shorter)."""
    words = tuple(_WORD.findall(text.lower()))
    if len(words) <= size:
        return {words}
    return {words[i : i + size] for i in range(len(words) - size + 1)}


@register("context_shaper", "dedupe")
class DedupeShaper(ContextShaperStage):
    """Removes near-duplicate hits, keeping the better-ranked one.

    Two hits are duplicates when their words are the same (case, spacing
    and punctuation aside) or when the Jaccard similarity of their word
    ``shingle``-grams is at least ``threshold``: the same file ingested
    twice, a page copied into another. The kept hit lists the removed
    hits' ``{chunk_id, source}`` in ``metadata["duplicates"]``.

    Args:
        threshold: Jaccard similarity (0-1] from which two hits are duplicates.
        shingle: Words per shingle.

    """

    def __init__(self, threshold: float = 0.9, shingle: int = 3) -> None:
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or math.isnan(threshold)
            or not 0 < threshold <= 1
        ):
            raise ConfigError(f"context shaper 'dedupe': threshold must lie in (0, 1], got {threshold!r}")
        check_int("context shaper 'dedupe'", "shingle", shingle, 1, wording="must")
        self.threshold = threshold
        self.shingle = shingle

    def shape_many(self, states: Sequence[QueryState]) -> list[list[Hit]]:
        """Each question's hits without the duplicates of better-ranked ones."""
        out = []
        for state in states:
            kept: list[tuple[Hit, str, set[tuple[str, ...]], list[dict[str, str]]]] = []
            same = near = 0
            for hit in state.hits:
                words = " ".join(_WORD.findall(hit.chunk.text.lower()))
                grams = shingles(hit.chunk.text, self.shingle)
                for _, key, other, duplicates in kept:
                    if key == words:
                        same += 1
                    elif _jaccard(grams, other) >= self.threshold:
                        near += 1
                    else:
                        continue
                    duplicates.append({"chunk_id": hit.chunk.id, "source": hit.chunk.source})
                    break
                else:
                    kept.append((hit, words, grams, []))
            hits = []
            for hit, _, _, duplicates in kept:
                if duplicates:
                    merged = [*hit.chunk.metadata.get("duplicates", []), *duplicates]
                    hit = Hit(
                        replace(hit.chunk, metadata={**hit.chunk.metadata, "duplicates": merged}),
                        hit.score,
                        hit.origin,
                        dict(hit.scores),
                        dict(hit.ranks),
                    )
                hits.append(hit)
            if state.trace and state.trace[-1].stage == self.label:
                if same or near:
                    state.trace[-1].notes.append(
                        f"removed {same + near} duplicate hit{'s' * (same + near != 1)} "
                        f"({same} with the same words, {near} with shingle Jaccard >= {self.threshold:g})"
                    )
                else:
                    state.trace[-1].notes.append("no duplicates")
            out.append(hits)
        return out


def _jaccard(a: set[Any], b: set[Any]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


__all__ = [
    "CompressShaper",
    "DedupeShaper",
    "DocumentText",
    "ParentDocumentShaper",
    "SentenceWindowShaper",
    "chunks_of_documents",
    "content_words",
    "load_documents",
    "section_key",
    "shaped_chunk",
    "shingles",
]
