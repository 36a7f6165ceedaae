"""What every built-in splitter shares: the ``split`` loop, config checks, the bound tokenizer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from ragkit.component import Component
from ragkit.errors import ConfigError, InputError
from ragkit.protocols import TokenCounter, counts_tokens
from ragkit.schema import Chunk, Document, Metadata
from ragkit.splitters._engine import (
    COUNT_BATCH,
    FIT_SEPARATORS,
    SpanChunker,
    TokenMeasure,
    count_tokens,
    strip_span,
)

__all__ = ["COUNT_BATCH", "BaseSplitter", "Span", "count_tokens", "strip_span"]

logger = logging.getLogger(__name__)

Span = tuple[int, int, Metadata]
"""``(start, end, metadata)`` of one chunk, as character offsets into the document text."""


class BaseSplitter(Component):
    """Base of the built-in splitters.

    Subclasses implement :meth:`_spanner`; this class turns the spans into
    :class:`~ragkit.schema.Chunk` objects (``chunk_index`` in the metadata,
    stable ids) and checks the documents.
    """

    _counter: TokenCounter | None = None
    fit_embedder: bool = True
    """Cut again, in the embedder's tokens, any chunk longer than the bound embedder reads
    (character-measured splitters; a constructor option of the built-ins)."""

    @property
    def measures_tokens(self) -> bool:
        """Whether chunk sizes are in tokens (then :meth:`bind_tokenizer` is required)."""
        return False

    def bind_tokenizer(self, counter: TokenCounter) -> None:
        """Measure tokens with ``counter`` (an embedder's own tokenizer).

        A collection calls this with its embedder, so token-based chunks fit
        the model that embeds them. Splitters that measure characters use it
        to cut again any chunk longer than the model reads (``fit_embedder``,
        on by default; with it off they warn instead), and accept (and
        ignore) an embedder that cannot count tokens.
        """
        if counts_tokens(counter):
            self._counter = counter
        elif self.measures_tokens:
            raise ConfigError(
                f"splitter {self.component_type!r} measures chunks in tokens, but {type(counter).__name__} "
                "cannot count them (it needs max_tokens and count_tokens(texts)); use an embedder with "
                "its own tokenizer, or measure in characters"
            )
        else:
            self._counter = None

    def split(self, documents: Sequence[Document]) -> list[Chunk]:
        """Chunks of all ``documents``, in order; ``doc.text[c.start:c.end] == c.text``."""
        spans_of = self._spanner()
        texts: list[str] = []
        spans: list[list[Span]] = []
        for document in documents:
            text = document.text
            if text is None:
                raise InputError(
                    f"document {document.id!r} from {document.source!r} has no text to split "
                    "(it was not parsed by a loader)"
                )
            texts.append(text)
            spans.append(spans_of(text))
        if self._fits_embedder():
            spans = self._fit_embedder(texts, spans)
        chunks: list[Chunk] = []
        for document, text, document_spans in zip(documents, texts, spans, strict=True):
            for index, (start, end, metadata) in enumerate(document_spans):
                chunks.append(Chunk.create(document, text[start:end], start, {**metadata, "chunk_index": index}))
        self._after_split(chunks)
        return chunks

    def _check_fit_embedder(self, fit_embedder: bool) -> bool:
        if not isinstance(fit_embedder, bool):
            raise ConfigError(
                f"splitter {self.component_type!r}: fit_embedder must be true or false, got {fit_embedder!r}"
            )
        return fit_embedder

    def _fits_embedder(self) -> bool:
        """Whether :meth:`split` cuts again the chunks the bound embedder would truncate."""
        return self._counter is not None and self.fit_embedder and not self.measures_tokens

    def _fit_overlap(self, limit: int) -> int:
        """Tokens shared by the pieces of a chunk cut again to fit ``limit`` tokens."""
        return 0

    def _fit_keep_until(self, text: str, start: int, end: int) -> int:
        """Where the first piece of ``text[start:end]``, cut again to fit, may end at the earliest (0: anywhere)."""
        return 0

    def _fit_embedder(self, texts: list[str], spans: list[list[Span]]) -> list[list[Span]]:
        """Each document's spans, with every span longer than the embedder reads cut again to fit.

        Spans that fit are kept exactly as they are; an oversize one is cut at
        the best separator inside it (paragraph, line, sentence, word), its
        pieces keeping its metadata. All spans are counted in large batches.
        """
        counter = self._counter
        assert counter is not None
        limit = counter.max_tokens
        counts = iter(
            count_tokens(counter, [text[a:b] for text, spans_ in zip(texts, spans, strict=True) for a, b, _ in spans_])
        )
        chunker: SpanChunker | None = None
        fitted: list[list[Span]] = []
        for text, document_spans in zip(texts, spans, strict=True):
            kept: list[Span] = []
            for i, (start, end, metadata) in enumerate(document_spans):
                if next(counts) <= limit:
                    kept.append((start, end, metadata))
                    continue
                if chunker is None:
                    chunker = SpanChunker(limit, self._fit_overlap(limit), FIT_SEPARATORS, TokenMeasure(counter))
                next_start = document_spans[i + 1][0] if i + 1 < len(document_spans) else len(text)
                for a, b in chunker.spans(text, start, end, keep_until=self._fit_keep_until(text, start, end)):
                    # a piece that lies inside the overlap with a neighbour repeats it and adds nothing
                    if (kept and b <= kept[-1][1]) or a >= next_start:
                        continue
                    kept.append((a, b, dict(metadata)))
            fitted.append(kept)
        return fitted

    def _spanner(self) -> Callable[[str], list[Span]]:
        """The function that cuts one document's text into chunk spans, for one :meth:`split` call.

        It returns spans in order, without whitespace-only ones. Built once per
        call (where the token budget is resolved), and kept off ``self`` so a
        splitter can serve several threads at once.
        """
        raise NotImplementedError

    def _after_split(self, chunks: list[Chunk]) -> None:
        """Warn when a bound embedder would truncate chunks (character-measured splitters, ``fit_embedder`` off)."""
        counter = self._counter
        if counter is None or not chunks or self._fits_embedder():
            return
        limit = counter.max_tokens
        counts = count_tokens(counter, [chunk.text for chunk in chunks])
        over = [count for count in counts if count > limit]
        if over:
            logger.warning(
                "splitter %r: %d of %d chunks exceed the embedder's %d-token limit (longest %d tokens) "
                "and will be truncated when embedded; lower chunk_size, measure in tokens "
                "(length_unit='tokens', or the 'token' splitter) or set fit_embedder: true",
                self.component_type,
                len(over),
                len(chunks),
                limit,
                max(over),
            )
