"""The ``unstructured`` loader: the long tail of file formats, partitioned offline."""

from __future__ import annotations

import importlib
import logging
import shutil
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigError, LoaderError
from ragkit.loaders import ZIP_SUFFIXES, ArchiveLimits, BaseLoader, check_archive, html_to_text
from ragkit.loaders.archive_limits import (
    DEFAULT_MAX_ARCHIVE_MEMBERS,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_MEMBER_BYTES,
    DEFAULT_MAX_UNPACKED_BYTES,
)
from ragkit.schema import Document, Metadata

logger = logging.getLogger(__name__)

# suffix -> (module, partition function)
PARTITIONERS: dict[str, tuple[str, str]] = {
    ".pptx": ("unstructured.partition.pptx", "partition_pptx"),
    ".ppt": ("unstructured.partition.ppt", "partition_ppt"),
    ".xlsx": ("unstructured.partition.xlsx", "partition_xlsx"),
    ".xls": ("unstructured.partition.xlsx", "partition_xlsx"),
    ".eml": ("unstructured.partition.email", "partition_email"),
    ".msg": ("unstructured.partition.msg", "partition_msg"),
    ".epub": ("unstructured.partition.epub", "partition_epub"),
    ".rtf": ("unstructured.partition.rtf", "partition_rtf"),
    ".odt": ("unstructured.partition.odt", "partition_odt"),
    ".doc": ("unstructured.partition.doc", "partition_doc"),
    ".xml": ("unstructured.partition.xml", "partition_xml"),
    ".org": ("unstructured.partition.org", "partition_org"),
    ".rst": ("unstructured.partition.rst", "partition_rst"),
}

# formats unstructured converts with an outside program first
NEEDS_PANDOC = frozenset({".epub", ".rtf", ".odt", ".org", ".rst"})
NEEDS_LIBREOFFICE = frozenset({".doc", ".ppt"})
_LIBREOFFICE_PACKAGE = {".doc": "libreoffice-writer", ".ppt": "libreoffice-impress"}
_SAVE_AS = {".doc": ".docx", ".ppt": ".pptx"}

# partitioner keyword arguments that keep every format on the fast, offline path
_OFFLINE_KWARGS: dict[str, dict[str, Any]] = {
    ".pptx": {"strategy": "fast", "include_page_breaks": False},
    ".ppt": {"strategy": "fast", "include_page_breaks": False},
    ".eml": {"process_attachments": False},
    ".msg": {"process_attachments": False},
}

_SKIPPED_CATEGORIES = frozenset({"PageBreak", "Image", "Picture"})
_LIST_CATEGORIES = frozenset({"ListItem", "List-item", "BulletedText"})
_HEADING_CATEGORIES = frozenset({"Title", "Headline", "Subheadline", "Section-header"})


def pandoc_path() -> str | None:
    """The pandoc executable pypandoc would use, or None when there is none."""
    try:
        import pypandoc

        path = pypandoc.get_pandoc_path()
    except (ImportError, OSError):
        path = None
    return str(path) if path else shutil.which("pandoc")


def libreoffice_path() -> str | None:
    """The ``soffice`` executable (LibreOffice), or None."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def _missing_tool_reason(suffix: str) -> str | None:
    if suffix in NEEDS_PANDOC and pandoc_path() is None:
        return (
            f"reading {suffix} needs pandoc, which was not found: pip install pypandoc-binary "
            "(a dependency of ragkit-unstructured) or apt-get install pandoc"
        )
    if suffix in NEEDS_LIBREOFFICE and libreoffice_path() is None:
        return (
            f"reading {suffix} needs LibreOffice (the soffice command), which was not found: "
            f"apt-get install {_LIBREOFFICE_PACKAGE[suffix]}, or save the file as {_SAVE_AS[suffix]}"
        )
    return None


def render_elements(elements: list[Any]) -> str:
    """Element texts joined by blank lines: titles as ``#`` lines, list items as ``- ``, tables as rows."""
    blocks: list[str] = []
    for element in elements:
        category = getattr(element, "category", "")
        if category in _SKIPPED_CATEGORIES:
            continue
        text = (str(getattr(element, "text", "") or "")).strip()
        metadata = getattr(element, "metadata", None)
        if category == "Table":
            html = getattr(metadata, "text_as_html", None)
            if html:
                rendered, _ = html_to_text(html)
                text = rendered or text
        if not text:
            continue
        if category in _HEADING_CATEGORIES:
            depth = getattr(metadata, "category_depth", None)
            level = min(int(depth) + 1, 6) if isinstance(depth, int) and depth >= 0 else 1
            text = "#" * level + " " + " ".join(text.split())
        elif category in _LIST_CATEGORIES:
            text = "- " + text
        blocks.append(text)
    return "\n\n".join(blocks)


def _first_heading(elements: list[Any]) -> str | None:
    for element in elements:
        if getattr(element, "category", "") in _HEADING_CATEGORIES:
            text = " ".join(str(element.text or "").split())
            if text:
                return text
    return None


def _email_metadata(elements: list[Any]) -> Metadata:
    found: Metadata = {}
    for element in elements:
        meta = element.metadata
        if "subject" not in found and getattr(meta, "subject", None):
            found["subject"] = str(meta.subject)
        if "sent_from" not in found and getattr(meta, "sent_from", None):
            found["sent_from"] = ", ".join(map(str, meta.sent_from))
        if "sent_to" not in found and getattr(meta, "sent_to", None):
            found["sent_to"] = ", ".join(map(str, meta.sent_to))
    return found


class UnstructuredLoader(BaseLoader):
    """Long-tail formats through unstructured's format-specific partitioners, offline.

    Reads .pptx, .xlsx, .xls, .eml, .msg, .epub, .rtf, .odt, .org, .rst and
    .xml; .doc and .ppt too where LibreOffice is installed. No OCR, no
    layout models, no downloads: see :mod:`ragkit_unstructured.offline`.

    Elements become text joined by blank lines, titles as ``#`` lines. With
    ``split_pages`` (default) a file whose elements carry page numbers
    (slides of a deck, sheets of a workbook) gives one document per page,
    with ``page`` metadata (and ``sheet`` for workbooks); otherwise one
    document per file. Email files get ``subject``, ``sent_from`` and
    ``sent_to`` metadata (attachments are not read).

    The zip-based formats (.pptx, .xlsx, .odt, .epub) are held to the
    archive limits before they are partitioned (the ``max_*`` options, see
    :class:`~ragkit.loaders.ArchiveLimits`; ``None`` lifts one), so a
    decompression bomb fails as that file's error.
    """

    extensions = tuple(PARTITIONERS)
    checks_archives = True

    def __init__(
        self,
        split_pages: bool = True,
        include_slide_notes: bool = True,
        max_unpacked_bytes: int | None = DEFAULT_MAX_UNPACKED_BYTES,
        max_member_bytes: int | None = DEFAULT_MAX_MEMBER_BYTES,
        max_archive_members: int | None = DEFAULT_MAX_ARCHIVE_MEMBERS,
        max_compression_ratio: float | None = DEFAULT_MAX_COMPRESSION_RATIO,
    ) -> None:
        if not isinstance(split_pages, bool) or not isinstance(include_slide_notes, bool):
            raise ConfigError("loader 'unstructured': split_pages and include_slide_notes must be true or false")
        self.split_pages = split_pages
        self.include_slide_notes = include_slide_notes
        try:
            self.archive_limits = ArchiveLimits(
                max_unpacked_bytes, max_member_bytes, max_archive_members, max_compression_ratio
            )
        except ConfigError as exc:
            raise ConfigError(f"loader 'unstructured': {exc}") from None

    def partition(self, path: Path) -> list[Any]:
        """The unstructured elements of ``path`` (raises :class:`LoaderError` for any failure)."""
        suffix = path.suffix.lower()
        if suffix not in PARTITIONERS:
            raise LoaderError(str(path), f"the unstructured loader does not read {suffix or 'files without a suffix'}")
        reason = _missing_tool_reason(suffix)
        if reason:
            raise LoaderError(str(path), reason)
        if suffix in ZIP_SUFFIXES:
            check_archive(path, self.archive_limits)
        from ragkit_unstructured.offline import ensure_offline

        ensure_offline()
        module_name, function_name = PARTITIONERS[suffix]
        try:
            partition = getattr(importlib.import_module(module_name), function_name)
        except ImportError as exc:
            raise LoaderError(
                str(path),
                f"reading {suffix} needs the Python package {exc.name or exc}: pip install ragkit-unstructured "
                "brings it in",
            ) from None
        kwargs = dict(_OFFLINE_KWARGS.get(suffix, {}))
        if suffix in {".pptx", ".ppt"}:
            kwargs["include_slide_notes"] = self.include_slide_notes
        try:
            with warnings.catch_warnings():
                # pandas/openpyxl deprecation chatter from inside unstructured: not the user's concern
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                return list(partition(filename=str(path), **kwargs))
        except LoaderError:
            raise
        except Exception as exc:
            raise LoaderError(str(path), _failure_reason(suffix, exc)) from exc

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """One document per page (slide, sheet) or per file."""
        elements = self.partition(path)
        base = self.base_metadata(path, source)
        if path.suffix.lower() in {".eml", ".msg"}:
            base.update(_email_metadata(elements))
            if "subject" in base:
                base["title"] = base["subject"]
        pages: OrderedDict[int, list[Any]] = OrderedDict()
        for element in elements:
            number = getattr(element.metadata, "page_number", None)
            pages.setdefault(number if isinstance(number, int) else 0, []).append(element)
        paged = self.split_pages and len(pages) > 0 and all(number > 0 for number in pages)
        found = False
        if paged:
            for number, page_elements in pages.items():
                text = render_elements(page_elements)
                if not text.strip():
                    continue
                metadata = {**base, "page": number}
                sheet = getattr(page_elements[0].metadata, "page_name", None)
                if sheet:
                    metadata["sheet"] = str(sheet)
                heading = _first_heading(page_elements)
                if heading and "title" not in base:
                    metadata["title"] = heading
                found = True
                yield self.make_document(source, text, metadata, fragment=f"page={number}")
        else:
            text = render_elements(elements)
            if text.strip():
                metadata = dict(base)
                heading = _first_heading(elements)
                if heading and "title" not in metadata:
                    metadata["title"] = heading
                found = True
                yield self.make_document(source, text, metadata)
        if not found:
            raise LoaderError(str(path), "no text found in the file")


def _failure_reason(suffix: str, exc: Exception) -> str:
    message = str(exc).strip() or type(exc).__name__
    lowered = message.lower()
    if "soffice" in lowered or "libreoffice" in lowered:
        return _missing_tool_reason(suffix) or f"LibreOffice could not convert the file: {message}"
    if "pandoc" in lowered and pandoc_path() is None:
        return _missing_tool_reason(suffix) or message
    name = type(exc).__name__
    if name in {"BadZipFile", "PackageNotFoundError"} or "zip" in lowered:
        return f"not a valid {suffix} file (corrupt, or another format renamed?): {message}"
    first_line = message.splitlines()[0][:500]
    return f"unstructured could not read the {suffix} file: {name}: {first_line}"
