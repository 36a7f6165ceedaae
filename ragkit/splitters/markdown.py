"""The header-aware splitter for Markdown (and HTML / DOCX, whose loaders write headings as ``#`` lines)."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from ragkit.registry import register
from ragkit.splitters.base import Span, strip_span
from ragkit.splitters.recursive import RecursiveSplitter

_ATX = re.compile(r"^ {0,3}(#{1,6})(?=[ \t]|\r?$)([^\n]*)$", re.MULTILINE)
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*\r?$", re.MULTILINE)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)$", re.MULTILINE)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(?:[^\n]*\n)*?(?:---|\.\.\.)[ \t]*\r?(?=\n|\Z)")
# lines that open a block other than a paragraph, so a setext underline under them is a rule
_NOT_PARAGRAPH = re.compile(r" {0,3}(?:[-+*](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)|>|<|#{1,6}(?:[ \t]|$)|`{3}|~{3})")


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading found in Markdown text."""

    start: int
    """Where its section starts: the heading line (ATX) or the first line of its text (setext)."""
    end: int
    """End of the heading's own lines (the underline, for setext)."""
    level: int
    title: str


def _blocked_ranges(text: str) -> list[tuple[int, int]]:
    """Front matter and fenced code blocks, in order: ``#`` lines in them are not headings.

    Each range runs from the start of its first line to the end of its last
    line (before the newline).
    """
    ranges: list[tuple[int, int]] = []
    front = _FRONT_MATTER.match(text)
    if front:
        ranges.append((0, front.end()))
    opened: re.Match[str] | None = None
    for fence in _FENCE.finditer(text, front.end() if front else 0):
        if opened is None:
            if fence.group(1)[0] == "`" and "`" in fence.group(2):
                continue  # a backtick fence's info string has no backticks
            opened = fence
        elif (
            fence.group(1)[0] == opened.group(1)[0]
            and len(fence.group(1)) >= len(opened.group(1))
            and not fence.group(2).strip()
        ):
            ranges.append((opened.start(), fence.end()))
            opened = None
    if opened is not None:
        ranges.append((opened.start(), len(text)))
    return ranges


def _setext_paragraph(text: str, underline_start: int, floor: int) -> int | None:
    """Start of the paragraph right above a setext underline, or ``None`` when there is none.

    ``floor`` is the first position the paragraph may start at (just after
    the previous heading or code block).
    """
    start = None
    end = underline_start - 1  # the newline that ends the line above
    while end > floor:
        line_start = max(text.rfind("\n", 0, end) + 1, floor)
        line = text[line_start:end].rstrip("\r")
        if not line.strip() or _SETEXT_UNDERLINE.fullmatch(line):
            break
        start = line_start
        end = line_start - 1
    if start is None:
        return None
    first_line = text[start : text.find("\n", start)]
    if first_line.startswith(("    ", "\t")) or _NOT_PARAGRAPH.match(first_line):
        return None
    return start


def find_headings(text: str) -> list[Heading]:
    """ATX (``# Title``) and setext (``Title`` over ``===`` or ``---``) headings, in order.

    Headings inside fenced code blocks and YAML front matter are ignored.
    """
    blocked = _blocked_ranges(text)
    blocked_starts = [a for a, _ in blocked]

    def is_blocked(pos: int) -> bool:
        i = bisect.bisect_right(blocked_starts, pos) - 1
        return i >= 0 and pos < blocked[i][1]

    atx: list[Heading] = []
    for match in _ATX.finditer(text):
        title = " ".join(_ATX_CLOSING.sub("", match.group(2).rstrip("\r")).split())
        if title and not is_blocked(match.start()):  # an empty "#" line names no section
            atx.append(Heading(match.start(), match.end(), len(match.group(1)), title))
    # line ends a setext paragraph cannot reach above
    barriers = sorted([h.end for h in atx] + [b for _, b in blocked])
    setext: list[Heading] = []
    for match in _SETEXT_UNDERLINE.finditer(text):
        if match.start() == 0 or is_blocked(match.start()):
            continue
        below = bisect.bisect_left(barriers, match.start())
        floor = barriers[below - 1] + 1 if below else 0
        if setext:
            floor = max(floor, setext[-1].end + 1)
        start = _setext_paragraph(text, match.start(), floor)
        if start is not None:
            title = " ".join(text[start : match.start()].split())
            setext.append(Heading(start, match.end(), 1 if match.group(1)[0] == "=" else 2, title))
    return sorted(atx + setext, key=lambda h: h.start)


@register("splitter", "markdown")
class MarkdownSplitter(RecursiveSplitter):
    """Splits by heading sections first, then long sections with the recursive splitter.

    Each chunk's metadata gets ``headings`` (the heading path, top level
    first) and ``section`` (the path joined with ``" > "``). A section's
    first chunk starts with its heading line, so retrieval sees the title;
    a heading with no text of its own before a subheading gets no chunk
    (it is in its subsections' path). Options are the recursive
    splitter's.
    """

    def _fit_keep_until(self, text: str, start: int, end: int) -> int:
        """A chunk cut again to fit the embedder keeps its heading with the first words of its text."""
        headings = find_headings(text[start:end])
        if not headings or headings[0].start > 0:
            return 0
        return strip_span(text, start + headings[0].end, end)[0]

    def _spanner(self) -> Callable[[str], list[Span]]:
        chunker = self._chunker()

        def spans(text: str) -> list[Span]:
            headings = find_headings(text)
            result: list[Span] = []
            path: list[tuple[int, str]] = []
            if not headings or headings[0].start > 0:
                preamble = chunker.spans(text, 0, headings[0].start if headings else None)
                result.extend((a, b, {"headings": [], "section": ""}) for a, b in preamble)
            for i, heading in enumerate(headings):
                end = headings[i + 1].start if i + 1 < len(headings) else len(text)
                while path and path[-1][0] >= heading.level:
                    path.pop()
                path.append((heading.level, heading.title))
                body, body_end = strip_span(text, heading.end, end)
                next_deeper = i + 1 < len(headings) and headings[i + 1].level > heading.level
                if next_deeper and body >= body_end:
                    continue  # a bare heading over its subsections: it lives on in their paths
                titles = [title for _, title in path]
                section = " > ".join(titles)
                # the heading stays with the first words of its text
                for a, b in chunker.spans(text, heading.start, end, keep_until=body):
                    result.append((a, b, {"headings": list(titles), "section": section}))
            return result

        return spans


@register("splitter", "html")
class HtmlSplitter(MarkdownSplitter):
    """The markdown splitter under the name ``html``: the HTML and DOCX loaders write headings as ``#`` lines."""
