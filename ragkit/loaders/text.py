"""Plain text and Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ragkit import yaml_io
from ragkit.errors import ConfigError
from ragkit.loaders.base import RESERVED_METADATA, BaseLoader, open_error, scalar_metadata
from ragkit.loaders.encoding import check_encoding_name, iter_decoded, read_text
from ragkit.registry import register
from ragkit.schema import Document

DEFAULT_STREAM_THRESHOLD = 8 * 1024 * 1024


def _cut_point(buffer: str, limit: int) -> int:
    """Where to end a part of at most ``limit`` characters: after a blank line, else a line, else a space."""
    low = limit // 2
    for separator in ("\n\n", "\n\r\n", "\n", " "):
        found = buffer.rfind(separator, low, limit)
        if found >= 0:
            return found + len(separator)
    return limit


@register("loader", "text")
class TextLoader(BaseLoader):
    """Plain text files. Files larger than ``stream_threshold_bytes`` are streamed.

    A streamed file is read incrementally and comes out as several documents
    of about ``stream_threshold_bytes`` each, cut after a blank line (or a
    line, or a space), with metadata ``part`` (0-based) and ``part_offset``
    (the part's character offset in the whole file). Their texts concatenate
    to the file's text. Memory stays bounded whatever the file's size.
    """

    extensions = (".txt", ".text")

    def __init__(self, encoding: str | None = None, stream_threshold_bytes: int = DEFAULT_STREAM_THRESHOLD) -> None:
        self.encoding = check_encoding_name(encoding)
        if not isinstance(stream_threshold_bytes, int) or stream_threshold_bytes < 1024:
            raise ConfigError(
                f"loader 'text': stream_threshold_bytes must be an integer >= 1024, got {stream_threshold_bytes!r}"
            )
        self.stream_threshold_bytes = stream_threshold_bytes

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """One document, or parts of about ``stream_threshold_bytes`` for a large file."""
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise open_error(path, exc) from None
        if size <= self.stream_threshold_bytes:
            text, encoding = read_text(path, self.encoding)
            yield self.make_document(source, text, self.base_metadata(path, source, encoding=encoding))
            return
        yield from self._stream(path, source)

    def _stream(self, path: Path, source: str) -> Iterator[Document]:
        limit = self.stream_threshold_bytes
        buffer = ""
        part = 0
        offset = 0
        encoding = self.encoding or "utf-8"
        for piece, encoding in iter_decoded(path, self.encoding, block_bytes=min(limit, 1 << 20)):
            buffer += piece
            while len(buffer) >= limit:
                cut = _cut_point(buffer, limit)
                yield self._part(path, source, buffer[:cut], part, offset, encoding)
                buffer = buffer[cut:]
                offset += cut
                part += 1
        if buffer or part == 0:
            yield self._part(path, source, buffer, part, offset, encoding)

    def _part(self, path: Path, source: str, text: str, part: int, offset: int, encoding: str) -> Document:
        metadata = self.base_metadata(path, source, encoding=encoding, part=part, part_offset=offset)
        return self.make_document(source, text, metadata, fragment=f"part={part}")


_FRONT_MATTER = re.compile(
    r"\A---[ \t]*\r?\n(.*?)(?:\r?\n)?^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE
)
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """YAML front matter (``---`` ... ``---`` at the very start) and the text after it.

    Front matter that is not valid YAML, or not a mapping, is left in the text.
    """
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        data = yaml_io.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, text
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return {}, text
    return data, text[match.end() :]


def first_heading(text: str) -> str | None:
    """The text of the first Markdown heading (ATX ``#`` or setext), outside code fences."""
    fence: str | None = None
    previous = ""
    for line in text.splitlines():
        fence_match = _FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker[0]
            elif marker[0] == fence:
                fence = None
            previous = ""
            continue
        if fence is not None:
            continue
        atx = _ATX.match(line)
        if atx:
            return atx.group(2).strip()
        if previous.strip() and _SETEXT.match(line) and not _ATX.match(previous):
            return previous.strip()
        previous = line
    return None


@register("loader", "markdown")
class MarkdownLoader(BaseLoader):
    """Markdown files: one document each, the text kept as Markdown.

    Metadata ``title`` is the first heading. YAML front matter is removed
    from the text and its scalar values are merged into the metadata (its
    ``title`` wins over the first heading); lists and mappings in it are
    dropped. Set ``front_matter=False`` to keep the file's text untouched.
    """

    extensions = (".md", ".markdown")

    def __init__(self, encoding: str | None = None, front_matter: bool = True) -> None:
        self.encoding = check_encoding_name(encoding)
        self.front_matter = bool(front_matter)

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """One document with ``title`` and front-matter metadata."""
        text, encoding = read_text(path, self.encoding)
        if text.startswith("\ufeff"):
            text = text[1:]
        matter: dict[str, Any] = {}
        if self.front_matter:
            matter, text = split_front_matter(text)
        metadata = self.base_metadata(path, source, encoding=encoding)
        title = first_heading(text)
        if title:
            metadata["title"] = title
        for key, value in scalar_metadata(matter).items():
            if key not in RESERVED_METADATA:
                metadata[key] = value
        yield self.make_document(source, text, metadata)
