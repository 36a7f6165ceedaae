"""What every built-in splitter shares: the ``split`` loop, config checks, the bound tokenizer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from ragkit.component import Component
from ragkit.errors import ConfigError, InputError
from ragkit.protocols import TokenCounter, counts_tokens
from ragkit.schema import Chunk, Document, Metadata

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

    @property
    def measures_tokens(self) -> bool:
        """Whether chunk sizes are in tokens (then :meth:`bind_tokenizer` is required)."""
        return False

    def bind_tokenizer(self, counter: TokenCounter) -> None:
        """Measure tokens with ``counter`` (an embedder's own tokenizer).

        A collection calls this with its embedder, so token-based chunks fit
        the model that embeds them. Splitters that measure characters use it
        only to warn when chunks would be truncated by the model, and accept
        (and ignore) an embedder that cannot count tokens.
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
        chunks: list[Chunk] = []
        for document in documents:
            text = document.text
            if text is None:
                raise InputError(
                    f"document {document.id!r} from {document.source!r} has no text to split "
                    "(it was not parsed by a loader)"
                )
            for index, (start, end, metadata) in enumerate(spans_of(text)):
                chunks.append(Chunk.create(document, text[start:end], start, {**metadata, "chunk_index": index}))
        self._after_split(chunks)
        return chunks

    def _spanner(self) -> Callable[[str], list[Span]]:
        """The function that cuts one document's text into chunk spans, for one :meth:`split` call.

        It returns spans in order, without whitespace-only ones. Built once per
        call (where the token budget is resolved), and kept off ``self`` so a
        splitter can serve several threads at once.
        """
        raise NotImplementedError

    def _after_split(self, chunks: list[Chunk]) -> None:
        """Warn when a bound embedder would truncate chunks (character-measured splitters)."""
        counter = self._counter
        if counter is None or not chunks:
            return
        limit = counter.max_tokens
        counts = count_tokens(counter, [chunk.text for chunk in chunks])
        over = [count for count in counts if count > limit]
        if over:
            logger.warning(
                "splitter %r: %d of %d chunks exceed the embedder's %d-token limit (longest %d tokens) "
                "and will be truncated when embedded; lower chunk_size or measure in tokens "
                "(length_unit='tokens', or the 'token' splitter)",
                self.component_type,
                len(over),
                len(chunks),
                limit,
                max(over),
            )


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
