"""Find citation markers (``[1]``, ``[2, 3]``, ``[1][4]``) in an answer and map them to blocks.

Also :class:`CitationTracker`, which watches a streamed answer and reports
each marker once it is complete, so citations reach a streaming client as
they are written, not only at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragkit.rag.answer import Citation
from ragkit.schema import Hit

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_WORD = re.compile(r"[A-Za-z0-9]+")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_LONGEST_MARKER = 24
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "which",
        "with",
    ]
)


@dataclass(slots=True)
class Marker:
    """One number inside a marker and where the marker starts in the answer."""

    number: int
    position: int


def find_markers(text: str) -> list[Marker]:
    """Every cited number in ``text`` with the offset of its marker, in order."""
    found = []
    for match in MARKER.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            found.append(Marker(int(part.strip()), match.start()))
    return found


def resolve_citations(text: str, hits: list[Hit]) -> tuple[list[Citation], list[int]]:
    """``(citations, dropped)``: the blocks ``text`` cites, in order of first mention.

    Block ``[n]`` is ``hits[n-1]``. Numbers that name no block are returned
    in ``dropped`` (each once) and left out of the citations.
    """
    citations: dict[int, Citation] = {}
    dropped: list[int] = []
    for marker in find_markers(text):
        if 1 <= marker.number <= len(hits):
            citation = citations.get(marker.number)
            if citation is None:
                citation = citations[marker.number] = Citation.from_hit(marker.number, hits[marker.number - 1])
            citation.positions.append(marker.position)
        elif marker.number not in dropped:
            dropped.append(marker.number)
    return list(citations.values()), dropped


def _words(text: str) -> set[str]:
    return {w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP and len(w) > 1}


def infer_citations(text: str, hits: list[Hit], min_overlap: float = 0.5) -> list[Citation]:
    """Attribute an answer that carries no markers to the blocks it draws on.

    Small local models often answer correctly without writing ``[n]``. Each
    sentence of the answer is matched to the block sharing most of its
    content words; a block is cited when at least ``min_overlap`` of some
    sentence's words occur in it. The citations are marked ``inferred``.
    """
    block_words = [_words(hit.chunk.text) for hit in hits]
    chosen: dict[int, Citation] = {}
    for sentence in _SENTENCE.finditer(text):
        words = _words(sentence.group(0))
        if len(words) < 2:
            continue
        best, best_share = -1, 0.0
        for index, vocabulary in enumerate(block_words):
            share = len(words & vocabulary) / len(words)
            if share > best_share:
                best, best_share = index, share
        if best >= 0 and best_share >= min_overlap:
            citation = chosen.get(best + 1)
            if citation is None:
                citation = chosen[best + 1] = Citation.from_hit(best + 1, hits[best])
                citation.inferred = True
            citation.positions.append(sentence.end())
    return sorted(chosen.values(), key=lambda c: c.positions[0])


class CitationTracker:
    """Feeds on streamed text and reports each valid block number the first time it is cited.

    A marker split across tokens (``[`` then ``2]``) is reported once its
    closing bracket arrives.
    """

    def __init__(self, hits: list[Hit]) -> None:
        self.hits = hits
        self.text = ""
        self._scanned = 0
        self._seen: set[int] = set()

    def feed(self, piece: str) -> list[Citation]:
        """Add ``piece``; the citations completed by it that were not reported before."""
        self.text += piece
        new: list[Citation] = []
        position = self._scanned
        for match in MARKER.finditer(self.text, position):
            for part in re.split(r"[,;]", match.group(1)):
                number = int(part.strip())
                if 1 <= number <= len(self.hits) and number not in self._seen:
                    self._seen.add(number)
                    new.append(Citation.from_hit(number, self.hits[number - 1]))
            position = match.end()
        # keep an unclosed '[' at the end for the next piece: it may become a marker
        open_at = self.text.rfind("[", position)
        if open_at != -1 and "]" not in self.text[open_at:] and len(self.text) - open_at <= _LONGEST_MARKER:
            self._scanned = open_at
        else:
            self._scanned = len(self.text)
        return new
