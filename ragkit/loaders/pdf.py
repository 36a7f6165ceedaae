"""PDF files: one document per page, with page numbers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from ragkit.errors import ConfigError, LoaderError
from ragkit.loaders.base import BaseLoader
from ragkit.registry import register
from ragkit.schema import Document

logger = logging.getLogger(__name__)

PdfEngine = Literal["auto", "pypdf", "pypdfium2"]
_ENGINES = ("auto", "pypdf", "pypdfium2")
NO_TEXT_REASON = "no extractable text (scanned PDF?): every page is empty; run OCR on it first"


def _pypdf_pages(path: Path) -> tuple[int, Iterator[str], str | None]:
    import pypdf
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    pypdf_logger = logging.getLogger("pypdf")
    if pypdf_logger.level == logging.NOTSET:  # quiet by default, unless the application configured it
        pypdf_logger.setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise LoaderError(str(path), "the PDF is encrypted and needs a password")
            except (NotImplementedError, FileNotDecryptedError) as exc:
                raise LoaderError(str(path), f"the PDF is encrypted and cannot be opened: {exc}") from None
        count = len(reader.pages)
    except LoaderError:
        raise
    except (PdfReadError, FileNotDecryptedError) as exc:
        raise _Unreadable(f"pypdf: {exc}") from exc
    except Exception as exc:
        raise _Unreadable(f"pypdf: {type(exc).__name__}: {exc}") from exc
    title = None
    try:
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title).strip() or None
    except Exception:  # broken info dictionary: not worth failing the file
        title = None

    def pages() -> Iterator[str]:
        for page in reader.pages:
            yield page.extract_text() or ""

    return count, pages(), title


def _pypdfium2_pages(path: Path) -> tuple[int, Iterator[str], str | None]:
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise _Unreadable("pypdfium2 is not installed (pip install pypdfium2 for a second opinion)") from None
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise LoaderError(str(path), "the PDF is encrypted and needs a password") from None
        raise _Unreadable(f"pypdfium2: {message}") from exc
    title = None
    try:
        title = (pdf.get_metadata_dict().get("Title") or "").strip() or None
    except Exception:
        title = None

    def pages() -> Iterator[str]:
        try:
            for index in range(len(pdf)):
                page = pdf[index]
                textpage = page.get_textpage()
                text = str(textpage.get_text_range())
                textpage.close()
                page.close()
                yield text.replace("\r\n", "\n")
        finally:
            pdf.close()

    return len(pdf), pages(), title


class _Unreadable(Exception):
    """One engine could not open the file; the next may."""


@register("loader", "pdf")
class PdfLoader(BaseLoader):
    """PDF files, one document per page with ``page`` (1-based) and ``page_count``.

    ``engine="auto"`` reads with pypdf and, where pypdf cannot open the file,
    tries pypdfium2 when it is installed. Pages without text are skipped; a
    PDF with no text at all (a scan) is an error, as are encrypted and
    corrupt files.
    """

    extensions = (".pdf",)

    def __init__(self, engine: PdfEngine = "auto") -> None:
        if engine not in _ENGINES:
            raise ConfigError(f"loader 'pdf': engine must be one of {', '.join(_ENGINES)}, got {engine!r}")
        self.engine = engine

    def _open(self, path: Path) -> tuple[int, Iterator[str], str | None]:
        engines = {"auto": ("pypdf", "pypdfium2"), "pypdf": ("pypdf",), "pypdfium2": ("pypdfium2",)}[self.engine]
        reasons = []
        for name in engines:
            opener: Any = _pypdf_pages if name == "pypdf" else _pypdfium2_pages
            try:
                return opener(path)  # type: ignore[no-any-return]
            except _Unreadable as exc:
                reasons.append(str(exc))
        raise LoaderError(str(path), "not a readable PDF (corrupt or truncated?): " + "; ".join(reasons))

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """One document per page that has text."""
        if not path.is_file():
            raise LoaderError(str(path), "no such file")
        count, pages, title = self._open(path)
        found = 0
        number = 0
        try:
            for number, text in enumerate(pages, start=1):
                if not text.strip():
                    continue
                found += 1
                metadata = self.base_metadata(path, source, page=number, page_count=count)
                if title:
                    metadata["title"] = title
                yield self.make_document(source, text, metadata, fragment=f"page={number}")
        except LoaderError:
            raise
        except Exception as exc:
            raise LoaderError(
                str(path), f"cannot extract text from page {number + 1}: {type(exc).__name__}: {exc}"
            ) from exc
        if found == 0:
            raise LoaderError(str(path), NO_TEXT_REASON if count else "the PDF has no pages")
