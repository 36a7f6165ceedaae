"""The recursive splitter (characters or tokens) and the token splitter."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ClassVar, Literal

from ragkit.errors import ConfigError
from ragkit.options import check_int
from ragkit.registry import register
from ragkit.schema import Chunk
from ragkit.splitters._engine import DEFAULT_SEPARATORS, SpanChunker, TokenMeasure
from ragkit.splitters.base import BaseSplitter, Span

logger = logging.getLogger(__name__)

LengthUnit = Literal["characters", "tokens"]


@register("splitter", "recursive")
class RecursiveSplitter(BaseSplitter):
    """Cuts text at the coarsest separator that makes pieces fit, then packs pieces into chunks.

    Separators are tried in order (paragraphs, lines, words, then anywhere),
    so chunks end at natural boundaries where they can. Consecutive chunks
    share about ``chunk_overlap`` units of text.

    Args:
        chunk_size: The longest chunk, in ``length_unit``.
        chunk_overlap: How much consecutive chunks share, in ``length_unit``;
            by default a fifth of ``chunk_size``.
        length_unit: ``"characters"``, or ``"tokens"`` as counted by the
            embedder's own tokenizer (see :meth:`bind_tokenizer`); in tokens
            no chunk exceeds ``chunk_size``, nor the model's input limit.
        separators: Literal strings to cut at, coarsest first; cutting
            anywhere (``""``) is always the last resort.
        fit_embedder: In characters, when the collection's embedder counts
            tokens: cut again any chunk longer than the model reads (at a
            paragraph, line, sentence or word inside it), so no chunk is
            truncated when embedded; chunks that fit are left as they are.
            Off, such chunks are kept whole and a warning says how many.

    """

    _overlap_share: ClassVar[int] = 5
    """The default overlap is ``chunk_size // _overlap_share``."""

    def __init__(
        self,
        chunk_size: int = 1000,
        chunk_overlap: int | None = None,
        length_unit: LengthUnit = "characters",
        separators: list[str] | None = None,
        fit_embedder: bool = True,
    ) -> None:
        name = self.component_type or type(self).__name__
        self.fit_embedder = self._check_fit_embedder(fit_embedder)
        self.chunk_size = check_int(f"splitter {name!r}", "chunk_size", chunk_size, 1, wording="must", symbols=True)
        if chunk_overlap is None:
            chunk_overlap = chunk_size // self._overlap_share
        self.chunk_overlap = check_int(
            f"splitter {name!r}", "chunk_overlap", chunk_overlap, 0, wording="must", symbols=True
        )
        if chunk_overlap >= chunk_size:
            raise ConfigError(
                f"splitter {name!r}: chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})"
            )
        if length_unit not in ("characters", "tokens"):
            raise ConfigError(f"splitter {name!r}: length_unit must be 'characters' or 'tokens', got {length_unit!r}")
        self.length_unit: LengthUnit = length_unit
        if separators is not None and (
            not isinstance(separators, list) or not all(isinstance(s, str) for s in separators) or not separators
        ):
            raise ConfigError(f"splitter {name!r}: separators must be a non-empty list of strings, got {separators!r}")
        self.separators: tuple[str, ...] = DEFAULT_SEPARATORS if separators is None else tuple(separators)
        self._clamp_warned = False

    @property
    def measures_tokens(self) -> bool:
        """Whether chunk sizes are in tokens (``length_unit="tokens"``)."""
        return self.length_unit == "tokens"

    def _chunker(self) -> SpanChunker:
        """The span chunker for one :meth:`split` call, with the token budget resolved."""
        if self.length_unit == "characters":
            return SpanChunker(self.chunk_size, self.chunk_overlap, self.separators)
        counter = self._counter
        if counter is None:
            raise ConfigError(
                f"splitter {self.component_type!r} measures chunks in tokens and needs an embedder's "
                "tokenizer: call bind_tokenizer(embedder) first (a Collection does this for you)"
            )
        size, overlap, limit = self.chunk_size, self.chunk_overlap, counter.max_tokens
        if size > limit:
            # keep the overlap's share of the chunk, so the chunks still advance
            size, overlap = limit, overlap * limit // size
            if not self._clamp_warned:
                self._clamp_warned = True
                logger.warning(
                    "splitter %r: chunk_size %d is more than the embedder reads (%d tokens); using %d "
                    "with an overlap of %d",
                    self.component_type,
                    self.chunk_size,
                    limit,
                    size,
                    overlap,
                )
        return SpanChunker(size, overlap, self.separators, TokenMeasure(counter))

    def _fit_overlap(self, limit: int) -> int:
        """The overlap's share of the chunk, in the ``limit`` tokens a too-long chunk is cut again to."""
        return limit * self.chunk_overlap // self.chunk_size

    def _spanner(self) -> Callable[[str], list[Span]]:
        chunker = self._chunker()
        return lambda text: [(start, end, {}) for start, end in chunker.spans(text)]

    def _after_split(self, chunks: list[Chunk]) -> None:
        if not self.measures_tokens:  # chunks measured in tokens fit already
            super()._after_split(chunks)


@register("splitter", "token")
class TokenSplitter(RecursiveSplitter):
    """The recursive splitter measuring in tokens of the embedder's own tokenizer.

    No chunk exceeds ``chunk_size`` tokens as the model counts them (special
    tokens included), so none is silently truncated when embedded; a
    ``chunk_size`` above the model's limit is lowered to it, with a warning.
    Needs :meth:`bind_tokenizer` before :meth:`split` (a collection binds
    its embedder). The default overlap is an eighth of ``chunk_size``
    (32 tokens of 256).
    """

    _overlap_share = 8

    def __init__(
        self, chunk_size: int = 256, chunk_overlap: int | None = None, separators: list[str] | None = None
    ) -> None:
        super().__init__(chunk_size, chunk_overlap, "tokens", separators)
