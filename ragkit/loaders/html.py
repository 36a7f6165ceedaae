"""HTML pages, turned into text with Markdown-style headings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragkit.errors import LoaderError
from ragkit.loaders.base import BaseLoader
from ragkit.loaders.encoding import check_encoding_name, read_text
from ragkit.registry import register
from ragkit.schema import Document

DROPPED_TAGS = frozenset(
    {"script", "style", "nav", "noscript", "template", "head", "svg", "iframe", "object", "button", "select"}
)
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "html", "main", "ol",
        "p", "section", "summary", "ul", "center",
    }
)  # fmt: skip
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")


class _TextBuilder:
    """Collects blocks (paragraphs, headings, list items, rows) separated by blank lines."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.inline: list[str] = []

    def text(self, value: str) -> None:
        # source line breaks are just spaces in HTML; only <br> makes a line
        self.inline.append(_SPACES.sub(" ", value))

    def line_break(self) -> None:
        self.inline.append("\n")

    def flush(self, prefix: str = "") -> None:
        raw = "".join(self.inline)
        self.inline = []
        lines = [_SPACES.sub(" ", line).strip() for line in raw.split("\n")]
        text = "\n".join(line for line in lines if line)
        if text:
            self.blocks.append(prefix + text)

    def raw_block(self, text: str) -> None:
        self.flush()
        if text.strip():
            self.blocks.append(text.strip("\n"))

    def result(self) -> str:
        self.flush()
        return "\n\n".join(self.blocks)


def _inline_text(node: Any) -> str:
    return _SPACES.sub(" ", node.get_text(" ")).strip()


def _walk(node: Any, out: _TextBuilder) -> None:
    from bs4.element import Comment, Doctype, NavigableString, ProcessingInstruction, Tag

    for child in node.children:
        if isinstance(child, Comment | Doctype | ProcessingInstruction):
            continue
        if isinstance(child, NavigableString):
            out.text(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name.lower()
        if name in DROPPED_TAGS:
            continue
        if name in _HEADINGS:
            out.flush()
            heading = _inline_text(child)
            if heading:
                out.blocks.append("#" * _HEADINGS[name] + " " + heading)
        elif name == "br":
            out.line_break()
        elif name == "hr":
            out.flush()
        elif name == "pre":
            out.raw_block(child.get_text())
        elif name == "li":
            out.flush()
            _walk(child, out)
            out.flush(prefix="- ")
        elif name == "table":
            out.flush()
            rows = []
            for row in child.find_all("tr"):
                cells = [_inline_text(cell) for cell in row.find_all(["td", "th"])]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                out.blocks.append("\n".join(rows))
        elif name in _BLOCK_TAGS:
            out.flush()
            _walk(child, out)
            out.flush()
        else:
            _walk(child, out)


def html_to_text(markup: str) -> tuple[str, str | None]:
    """``(text, title)`` of an HTML page: headings as ``#`` lines, blocks separated by blank lines.

    ``script``, ``style``, ``nav`` and other non-content elements are dropped;
    tables come out one row a line, cells joined by ``" | "``.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "lxml")
    title_tag = soup.find("title")
    title = _inline_text(title_tag) if title_tag is not None else None
    root = soup.body or soup
    builder = _TextBuilder()
    _walk(root, builder)
    return builder.result(), title or None


@register("loader", "html")
class HtmlLoader(BaseLoader):
    """HTML files: the visible text, headings rendered as Markdown ``#`` lines; ``title`` from ``<title>``."""

    extensions = (".html", ".htm", ".xhtml")

    def __init__(self, encoding: str | None = None) -> None:
        self.encoding = check_encoding_name(encoding)

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """One document for the page."""
        markup, encoding = read_text(path, self.encoding, html=True)
        try:
            text, title = html_to_text(markup)
        except Exception as exc:  # lxml/bs4 internals: never let them escape unwrapped
            raise LoaderError(str(path), f"cannot parse HTML: {exc}") from exc
        metadata = self.base_metadata(path, source, encoding=encoding)
        if title:
            metadata["title"] = title
        yield self.make_document(source, text, metadata)
