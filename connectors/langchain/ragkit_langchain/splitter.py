"""LangChain text splitters as a ragkit splitter (component ``splitter.langchain``).

::

    splitter: {type: langchain, splitter: langchain_text_splitters.RecursiveCharacterTextSplitter,
               kwargs: {chunk_size: 800, chunk_overlap: 100}}

The splitter's ``split_text`` cuts each document's text; each piece is found
again in the text (after the previous piece's start, as LangChain's own
``add_start_index`` does), so chunks keep exact character offsets
(``document.text[start:end] == chunk.text``) and ragkit can cite the span.
A piece the splitter rewrote (found nowhere in the text) is refused with an
error naming the document, rather than given a wrong span.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ragkit.component import Component
from ragkit.errors import ConfigError, InputError
from ragkit.schema import Chunk, Document
from ragkit_langchain._imports import instantiate


class LangChainSplitter(Component):
    """Any LangChain text splitter (an object with ``split_text``) as a ragkit splitter.

    Args:
        splitter: Import path of the class (``langchain_text_splitters.RecursiveCharacterTextSplitter``).
        kwargs: Its constructor's keyword arguments.

    """

    role = "splitter"
    component_type = "langchain"

    def __init__(self, splitter: str, kwargs: Mapping[str, Any] | None = None) -> None:
        self.splitter = instantiate(splitter, kwargs, "splitter")
        if not callable(getattr(self.splitter, "split_text", None)):
            raise ConfigError(f"splitter 'langchain': {splitter} has no split_text method")

    def split(self, documents: Sequence[Document]) -> list[Chunk]:
        """Chunks of all ``documents``, in order, with exact offsets and ``chunk_index``."""
        chunks: list[Chunk] = []
        for document in documents:
            text = document.text
            if text is None:
                raise InputError(f"document {document.id!r} from {document.source!r} has no text to split")
            cursor = 0
            index = 0
            for piece in self.splitter.split_text(text):
                if not piece.strip():
                    continue
                start = text.find(piece, cursor)
                if start < 0:
                    start = text.find(piece)
                if start < 0:
                    raise InputError(
                        f"splitter 'langchain': {type(self.splitter).__name__} returned a piece of "
                        f"{document.source!r} that is not in its text ({piece[:60]!r}); ragkit needs exact spans"
                    )
                chunks.append(Chunk.create(document, piece, start, {"chunk_index": index}))
                index += 1
                cursor = start + 1
        return chunks
