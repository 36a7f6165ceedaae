"""Word documents (.docx)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigError, LoaderError
from ragkit.loaders.archive_limits import (
    DEFAULT_MAX_ARCHIVE_MEMBERS,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_MEMBER_BYTES,
    DEFAULT_MAX_UNPACKED_BYTES,
    ArchiveLimits,
    check_archive,
)
from ragkit.loaders.base import BaseLoader
from ragkit.registry import register
from ragkit.schema import Document

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_LIST_STYLE = re.compile(r"^list\b", re.IGNORECASE)


def _paragraph_block(paragraph: Any) -> str | None:
    text: str = paragraph.text.strip()
    if not text:
        return None
    style: str = paragraph.style.name if paragraph.style is not None else ""
    heading = _HEADING_STYLE.match(style or "")
    if heading:
        return "#" * min(int(heading.group(1)), 6) + " " + " ".join(text.split())
    if (style or "").lower() == "title":
        return "# " + " ".join(text.split())
    if _LIST_STYLE.match(style or ""):
        return "- " + text
    return text


def _table_block(table: Any) -> str | None:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # a merged cell is returned once per grid column it spans
            if previous is not None and cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows) or None


def docx_to_text(document: Any) -> str:
    """The body of a python-docx document: paragraphs, ``#`` headings and tables, in order."""
    from docx.table import Table

    blocks = []
    for item in document.iter_inner_content():
        block = _table_block(item) if isinstance(item, Table) else _paragraph_block(item)
        if block:
            blocks.append(block)
    return "\n\n".join(blocks)


@register("loader", "docx")
class DocxLoader(BaseLoader):
    """Word .docx files: paragraphs, headings ("Heading N" styles) as ``#`` lines, tables one row a line.

    ``title`` comes from the document's core properties when set. A .docx
    is a zip archive: before it is parsed, it is held to the archive limits
    (see :class:`~ragkit.loaders.archive_limits.ArchiveLimits`; ``None``
    lifts one), so a decompression bomb fails as this file's error.
    """

    extensions = (".docx",)
    checks_archives = True

    def __init__(
        self,
        max_unpacked_bytes: int | None = DEFAULT_MAX_UNPACKED_BYTES,
        max_member_bytes: int | None = DEFAULT_MAX_MEMBER_BYTES,
        max_archive_members: int | None = DEFAULT_MAX_ARCHIVE_MEMBERS,
        max_compression_ratio: float | None = DEFAULT_MAX_COMPRESSION_RATIO,
    ) -> None:
        try:
            self.archive_limits = ArchiveLimits(
                max_unpacked_bytes, max_member_bytes, max_archive_members, max_compression_ratio
            )
        except ConfigError as exc:
            raise ConfigError(f"loader 'docx': {exc}") from None

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """One document for the file."""
        import docx
        from docx.opc.exceptions import PackageNotFoundError

        check_archive(path, self.archive_limits)
        try:
            document = docx.Document(str(path))
        except (PackageNotFoundError, zipfile.BadZipFile, KeyError) as exc:
            raise LoaderError(
                str(path), f"not a valid .docx file (corrupt, or another format renamed?): {exc}"
            ) from None
        except OSError as exc:
            raise LoaderError(str(path), f"cannot read file: {exc.strerror or exc}") from None
        except Exception as exc:
            raise LoaderError(str(path), f"cannot parse .docx: {type(exc).__name__}: {exc}") from exc
        try:
            text = docx_to_text(document)
        except Exception as exc:
            raise LoaderError(str(path), f"cannot read the .docx body: {type(exc).__name__}: {exc}") from exc
        metadata = self.base_metadata(path, source)
        title = (document.core_properties.title or "").strip()
        if title:
            metadata["title"] = title
        author = (document.core_properties.author or "").strip()
        if author:
            metadata["author"] = author
        yield self.make_document(source, text, metadata)
