"""Splitters: cut documents into chunks that keep their character offsets.

Importing this package registers the built-ins: ``recursive``, ``token``,
``markdown`` (also as ``html``) and ``sentence``. Every chunk satisfies
``document.text[chunk.start:chunk.end] == chunk.text``.
"""

from ragkit.splitters.base import BaseSplitter
from ragkit.splitters.markdown import HtmlSplitter, MarkdownSplitter, find_headings
from ragkit.splitters.recursive import RecursiveSplitter, TokenSplitter
from ragkit.splitters.sentence import SentenceSplitter, sentence_spans

__all__ = [
    "BaseSplitter",
    "HtmlSplitter",
    "MarkdownSplitter",
    "RecursiveSplitter",
    "SentenceSplitter",
    "TokenSplitter",
    "find_headings",
    "sentence_spans",
]
