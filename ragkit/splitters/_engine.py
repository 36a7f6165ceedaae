"""Recursive splitting on character spans, built on langchain's ``RecursiveCharacterTextSplitter``.

langchain's splitter returns strings; its ``add_start_index`` finds them
again with ``str.find``, which picks the wrong occurrence when text repeats.
Here every piece is a :class:`_Piece` (a ``str`` that knows its offset), the
recursive descent over separators runs on pieces, and langchain's own
``_merge_splits`` (which packs pieces into chunks with overlap) hands them
back through ``_join_docs``, so each chunk keeps its exact offset.

Lengths are characters, or tokens of a bound :class:`TokenCounter`. Token
counts of pieces are taken in batches and cached; a chunk's estimate is the
sum of its pieces, and every finished chunk is counted once more, for real,
and cut again if the tokenizer disagrees, so no chunk exceeds the budget.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from ragkit.errors import ConfigError
from ragkit.protocols import TokenCounter

COUNT_BATCH = 256
"""Texts per count_tokens call: large enough to batch, small enough that tokenizers stay fast
(transformers' tokenizer call slows per text beyond about a thousand texts a call)."""


def count_tokens(counter: TokenCounter, texts: Sequence[str]) -> list[int]:
    """``counter.count_tokens(texts)``, in batches of :data:`COUNT_BATCH`."""
    counts: list[int] = []
    for i in range(0, len(texts), COUNT_BATCH):
        counts.extend(counter.count_tokens(list(texts[i : i + COUNT_BATCH])))
    return counts


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` so it neither starts nor ends with whitespace (may become empty)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


class PatternSeparator(str):
    """A separator given as a regular expression: a piece starts where the pattern matches.

    Plain separators are literal strings; this one lets a cut fall where no
    single string marks it, such as the space after a sentence's full stop.
    """

    pattern: re.Pattern[str]


def pattern_separator(name: str, pattern: str) -> PatternSeparator:
    """A :class:`PatternSeparator` shown as ``name`` (in configs and reprs), cutting where ``pattern`` matches."""
    separator = PatternSeparator(name)
    separator.pattern = re.compile(pattern)
    return separator


SENTENCE_END = pattern_separator("<sentence end>", r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s")
"""The whitespace after a sentence's closing punctuation (and any closing quote or bracket)."""

DEFAULT_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", " ", "")
FIT_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", SENTENCE_END, " ", "")
"""Where a chunk too long for the embedder is cut again: paragraphs, lines, sentences, words, anywhere."""


class _Piece(str):
    """A slice of the text being split that remembers where it starts."""

    start: int


def _piece(text: str, start: int) -> _Piece:
    piece = _Piece(text)
    piece.start = start
    return piece


class TokenMeasure:
    """Content tokens of a text (special tokens left out), counted in batches and cached."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.overhead = counter.count_tokens([""])[0]
        """Tokens the model adds to every input ([CLS], [SEP] ...)."""
        self._cache: dict[str, int] = {}

    def prime(self, texts: Iterable[str]) -> None:
        """Count every text not counted yet, in batches."""
        missing = list({str(text) for text in texts if text not in self._cache})
        counts = count_tokens(self.counter, missing)
        self._cache.update((text, count - self.overhead) for text, count in zip(missing, counts, strict=True))

    def __call__(self, text: str) -> int:
        count = self._cache.get(text)
        if count is None:
            self.prime([text])
            count = self._cache[text]
        return count

    def full(self, texts: Sequence[str]) -> list[int]:
        """Token counts as the model sees them (special tokens included); not cached."""
        return count_tokens(self.counter, texts)


@functools.cache
def _span_splitter_class() -> type[Any]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    class SpanSplitter(RecursiveCharacterTextSplitter):  # type: ignore[misc]
        """langchain's recursive splitter, run on offset-carrying pieces."""

        def __init__(self, chunk_size: int, chunk_overlap: int, separators: Sequence[str], measure: Any) -> None:
            super().__init__(
                separators=list(separators),
                keep_separator="start",
                chunk_size=chunk_size,
                chunk_overlap=chunk_overlap,
                length_function=measure,
                strip_whitespace=False,
            )
            self._measure = measure if isinstance(measure, TokenMeasure) else None
            self._keep_until = 0
            self._cuts: dict[tuple[int, int, int], list[_Piece]] = {}
            """Pieces cut while counting tokens ahead, by (start, length, separators left)."""

        def split_piece(self, piece: _Piece, keep_until: int = 0) -> list[_Piece]:
            self._keep_until = keep_until
            if self._measure is not None:
                self._prime_descent(piece)
            try:
                return cast(list[_Piece], self._split_text(piece, self._separators))
            finally:
                self._cuts.clear()

        def _pieces(self, text: _Piece, separators: list[str], keep: bool) -> tuple[str, list[_Piece], list[str]]:
            """The separator chosen for ``text``, the pieces it cuts, and the finer separators."""
            separator, rest = _choose(text, separators)
            key = (text.start, len(text), len(separators))
            pieces = self._cuts.pop(key, None)
            if pieces is None:
                pieces = _cut(text, separator, self._keep_until)
            if keep:
                self._cuts[key] = pieces
            return separator, pieces, rest

        def _prime_descent(self, piece: _Piece) -> None:
            # count, level by level, every piece the descent will measure: a few large batches
            # instead of one small batch per piece that needs cutting further
            assert self._measure is not None
            level: list[tuple[_Piece, list[str]]] = [(piece, self._separators)]
            while level:
                cut = [self._pieces(text, separators, keep=True)[1:] for text, separators in level]
                self._measure.prime(sub for pieces, _ in cut for sub in pieces)
                level = [
                    (sub, rest)
                    for pieces, rest in cut
                    if rest
                    for sub in pieces
                    if self._length_function(sub) >= self._chunk_size
                ]

        def _split_text(self, text: str, separators: list[str]) -> list[str]:
            # langchain's descent, with pieces cut by offset instead of re.split
            assert isinstance(text, _Piece)
            if self._measure is None and not _choose(text, separators)[0]:
                return self._windows(text)
            _, pieces, rest = self._pieces(text, separators, keep=False)
            chunks: list[str] = []
            good: list[str] = []
            for piece in pieces:
                if self._length_function(piece) < self._chunk_size:
                    good.append(piece)
                    continue
                if good:
                    chunks.extend(self._merge_splits(good, ""))
                    good = []
                if rest:
                    chunks.extend(self._split_text(piece, rest))
                else:
                    chunks.append(piece)
            if good:
                chunks.extend(self._merge_splits(good, ""))
            return chunks

        def _windows(self, text: _Piece) -> list[str]:
            # what _merge_splits makes of one-character pieces, without a piece per character
            size, step = self._chunk_size, self._chunk_size - self._chunk_overlap
            starts = range(0, max(len(text) - self._chunk_overlap, 1), step)
            return [_piece(text[i : i + size], text.start + i) for i in starts]

        def _join_docs(self, docs: list[str], separator: str) -> _Piece | None:
            if not docs:
                return None
            first = docs[0]
            assert isinstance(first, _Piece)
            return _piece("".join(docs), first.start)

    return SpanSplitter


def _ordered(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Non-empty spans by start, leaving out any that lies inside the one before.

    Overlap can make a chunk that only repeats part of its neighbour (where it
    meets whitespace, or where a chunk was cut again to fit); it adds nothing.
    """
    ordered: list[tuple[int, int]] = []
    for a, b in sorted(spans, key=lambda span: (span[0], -span[1])):
        if a < b and not (ordered and b <= ordered[-1][1]):
            ordered.append((a, b))
    return ordered


def _choose(text: str, separators: list[str]) -> tuple[str, list[str]]:
    """The first separator found in ``text`` (``""`` when none is), and the finer ones after it."""
    for i, candidate in enumerate(separators):
        found = candidate.pattern.search(text) if isinstance(candidate, PatternSeparator) else candidate in text
        if not candidate or found:
            return candidate, separators[i + 1 :]
    return "", []


def _cut(text: _Piece, separator: str, keep_until: int = 0) -> list[_Piece]:
    """Cut ``text`` before each occurrence of ``separator`` (the separator starts the next piece).

    No cut falls before ``keep_until`` (an offset into the whole text), except
    when cutting anywhere (``separator == ""``).
    """
    if not separator:
        return [_piece(char, text.start + i) for i, char in enumerate(text)]
    first = max(keep_until - text.start, 1)
    pattern = separator.pattern if isinstance(separator, PatternSeparator) else re.compile(re.escape(separator))
    bounds = [m.start() for m in pattern.finditer(text) if m.start() >= first]
    edges = [0, *bounds, len(text)]
    return [_piece(text[a:b], text.start + a) for a, b in itertools.pairwise(edges) if b > a]


class SpanChunker:
    """Cuts a region of text into chunk spans no longer than ``chunk_size`` (characters or tokens)."""

    def __init__(
        self,
        chunk_size: int,
        chunk_overlap: int,
        separators: Sequence[str] = DEFAULT_SEPARATORS,
        measure: TokenMeasure | None = None,
    ) -> None:
        separators = list(separators)
        if not separators or separators[-1] != "":
            separators.append("")  # last resort: cut anywhere, so every chunk fits
        self.chunk_size = chunk_size
        self.measure = measure
        length: Callable[[str], int] = len
        size, overlap = chunk_size, chunk_overlap
        if measure is not None:
            # langchain measures pieces; the model adds its special tokens once per chunk
            size = chunk_size - measure.overhead
            if size < 1:
                raise ConfigError(
                    f"chunk_size of {chunk_size} tokens leaves no room for text: the embedder adds "
                    f"{measure.overhead} special tokens to every input"
                )
            overlap, length = min(chunk_overlap, size - 1), measure
        self._splitter = _span_splitter_class()(size, overlap, separators, length)

    def spans(self, text: str, start: int = 0, end: int | None = None, keep_until: int = 0) -> list[tuple[int, int]]:
        """Chunk spans of ``text[start:end]`` as offsets into ``text``, in order, stripped of whitespace.

        ``text[start:keep_until]`` plus the word after it is kept in one piece
        while it fits (a heading with the start of its text).
        """
        end = len(text) if end is None else end
        pieces = self._splitter.split_piece(_piece(text[start:end], start), keep_until)
        spans = [strip_span(text, piece.start, piece.start + len(piece)) for piece in pieces]
        if self.measure is not None:
            spans = self._enforce_tokens(text, [(a, b) for a, b in spans if a < b])
        return _ordered(spans)

    def _enforce_tokens(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Count each chunk for real; cut again any the piece-wise estimate got wrong."""
        assert self.measure is not None
        counts = self.measure.full([text[a:b] for a, b in spans])
        if all(count <= self.chunk_size for count in counts):
            return spans
        fixed: list[tuple[int, int]] = []
        for (a, b), count in zip(spans, counts, strict=True):
            if count <= self.chunk_size:
                fixed.append((a, b))
            else:
                fixed.extend(self._hard_split(text, a, b))
        return fixed

    def _hard_split(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Cut ``text[start:end]`` into the longest prefixes that fit, preferring whitespace."""
        measure, limit = self.measure, self.chunk_size
        assert measure is not None

        def fits(a: int, b: int) -> bool:
            return measure.full([text[a:b]])[0] <= limit

        spans: list[tuple[int, int]] = []
        pos = start
        while True:
            pos, stop = strip_span(text, pos, end)
            if pos >= stop:
                return spans
            if fits(pos, stop):
                spans.append((pos, stop))
                return spans
            if not fits(pos, pos + 1):
                raise ConfigError(
                    f"chunk_size of {limit} tokens is too small: the character {text[pos]!r} alone "
                    "is longer once tokenized"
                )
            low, high = pos + 1, stop  # fits(pos, low) holds, fits(pos, stop) does not
            while high - low > 1:
                middle = (low + high) // 2
                if fits(pos, middle):
                    low = middle
                else:
                    high = middle
            cut = low
            space = max(text.rfind(" ", pos, low), text.rfind("\n", pos, low))
            if space > pos + (low - pos) // 2:
                a, b = strip_span(text, pos, space)
                if a < b and fits(a, b):
                    cut = space
            a, b = strip_span(text, pos, cut)
            spans.append((a, b))
            pos = cut
