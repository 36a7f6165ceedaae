"""The sentence splitter: whole sentences packed into chunks, found by rules (no model to download)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

from ragkit.options import check_int
from ragkit.registry import register
from ragkit.splitters._engine import SpanChunker
from ragkit.splitters.base import BaseSplitter, Span, strip_span

# a run of sentence-ending punctuation, closing quotes or brackets, then a space or the end
_END = re.compile(r"[.!?…]+['\"”’)\]»]*(?=\s|\Z)|[。！？]+['\"”’)\]」』»]*")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_WORD_BEFORE = re.compile(r"(\S+)\Z")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)+")  # J.  U.S.  e.g.  i.e.
_LIST_NUMBER = re.compile(r"(?:^|\n)[ \t]*\d{1,3}\Z")

_ABBREVIATION_WORDS = """
    mr mrs ms mx dr prof sr jr st rev gen col lt sgt capt cmdr gov sen rep pres hon mt ft
    vs etc al cf approx ca incl esp dept univ inc ltd co corp bros assn viz resp ibid op cit
    jan feb mar apr jun jul aug sep sept oct nov dec tue tues thu thur thurs
    ave blvd rd hwy avg ph.d b.sc m.sc
"""
_NUMBER_ABBREVIATION_WORDS = "no nos vol vols p pp fig figs ch chap sec art eq eqs para"
ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
"""Words (lower case, without their last dot) after which a dot does not end a sentence."""
NUMBER_ABBREVIATIONS = frozenset(_NUMBER_ABBREVIATION_WORDS.split())
"""Words after which a dot does not end a sentence when a number follows (``No. 5``, ``Fig. 2``)."""


def _ends_sentence(text: str, end: int, start: int) -> bool:
    """Whether the punctuation ``text[start:end]`` ends a sentence."""
    following = text[end : end + 40].lstrip()
    if following[:1].islower():
        return False  # "approx. five", "e.g. apples", "?! said she"
    if text[start:end].rstrip("'\"”’)]»") != ".":
        return True
    before = _WORD_BEFORE.search(text, max(0, start - 40), start)
    if before is None:
        return True
    word = before.group(1).lstrip("(['\"“‘«").lower()
    if word in ABBREVIATIONS or _INITIALS.fullmatch(word + "."):
        return False  # "Dr. Who", "U.S. Army", "J. Smith"
    if word in NUMBER_ABBREVIATIONS and following[:1].isdigit():
        return False  # "No. 5"
    return not (word.isdigit() and _LIST_NUMBER.search(text, max(0, start - 40), start))  # "1. First item"


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the sentences in ``text[start:end]``, stripped of surrounding whitespace.

    Rule-based: a sentence ends at ``.``, ``!``, ``?`` or ``…`` (with any
    closing quotes) followed by whitespace, unless the next word starts in
    lower case or the dot belongs to a known abbreviation (``e.g.``, ``Dr.``,
    ``U.S.``) or an initial; a blank line always ends one. Decimals
    (``3.14``) have no space after the dot, so they never end a sentence.
    """
    end = len(text) if end is None else end
    cuts = [start]
    for match in _END.finditer(text, start, end):
        if _ends_sentence(text, match.end(), match.start()):
            cuts.append(match.end())
    cuts.extend(match.end() for match in _PARAGRAPH_BREAK.finditer(text, start, end))
    cuts.append(end)
    cuts.sort()
    spans = []
    for a, b in itertools.pairwise(cuts):
        a, b = strip_span(text, a, b)
        if a < b:
            spans.append((a, b))
    return spans


@register("splitter", "sentence")
class SentenceSplitter(BaseSplitter):
    """Packs whole sentences into chunks of at most ``chunk_size`` characters.

    Consecutive chunks repeat the last ``sentence_overlap`` sentences of the
    previous one (fewer where they would not fit). A sentence longer than
    ``chunk_size`` is cut by the recursive splitter.

    Args:
        chunk_size: The longest chunk, in characters.
        sentence_overlap: Sentences shared by consecutive chunks.
        fit_embedder: When the collection's embedder counts tokens, cut
            again any chunk longer than the model reads (at a paragraph,
            line, sentence or word inside it); off, warn instead.

    """

    def __init__(self, chunk_size: int = 1000, sentence_overlap: int = 1, fit_embedder: bool = True) -> None:
        self.fit_embedder = self._check_fit_embedder(fit_embedder)
        self.chunk_size = check_int("splitter 'sentence'", "chunk_size", chunk_size, 1, wording="must", symbols=True)
        self.sentence_overlap = check_int(
            "splitter 'sentence'", "sentence_overlap", sentence_overlap, 0, wording="must", symbols=True
        )

    def _spanner(self) -> Callable[[str], list[Span]]:
        long_sentences = SpanChunker(self.chunk_size, 0)
        size, overlap = self.chunk_size, self.sentence_overlap

        def spans(text: str) -> list[Span]:
            sentences = sentence_spans(text)
            result: list[Span] = []
            i, n = 0, len(sentences)
            while i < n:
                first_start, first_end = sentences[i]
                if first_end - first_start > size:
                    result.extend((a, b, {}) for a, b in long_sentences.spans(text, first_start, first_end))
                    i += 1
                    continue
                j = i  # the group is sentences[i..j]
                while j + 1 < n and sentences[j + 1][1] - first_start <= size:
                    j += 1
                result.append((first_start, sentences[j][1], {}))
                if j + 1 >= n:
                    break
                # the next group repeats up to `overlap` sentences, as many as fit with the next one
                k = min(overlap, j - i)
                while k and sentences[j + 1][1] - sentences[j + 1 - k][0] > size:
                    k -= 1
                i = j + 1 - k
            return result

        return spans
