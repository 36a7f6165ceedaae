"""Loaders: files to :class:`~ragkit.schema.Document` objects.

Importing this package registers the built-in loaders (role ``loader``):
``text`` (.txt), ``markdown`` (.md), ``html`` (.html), ``pdf``, ``docx``,
``json``, ``jsonl`` and ``csv`` (.csv, .tsv). Connectors add more through the
``ragkit.components`` entry points (``ragkit-unstructured`` for the long
tail: pptx, xlsx, eml, epub ...).

* :func:`discover` finds the files under some folders;
* :class:`LoaderSet` picks each file's loader by suffix and turns any
  failure into a :class:`~ragkit.errors.LoaderError` naming the file;
* :func:`check_archive` holds a zip-based file (docx, pptx, xlsx, odt,
  epub) to :class:`ArchiveLimits` before it is parsed (no decompression bombs).
"""

from __future__ import annotations

from ragkit.errors import LoaderError
from ragkit.limits import DEFAULT_MAX_CHUNKS_PER_FILE
from ragkit.loaders.archive_limits import ZIP_SUFFIXES, ArchiveLimitError, ArchiveLimits, check_archive
from ragkit.loaders.base import BaseLoader, SourceFile, UnsupportedFileError
from ragkit.loaders.discovery import discover, glob_to_regex, matches_any, source_prefix
from ragkit.loaders.encoding import decode_bytes, read_text
from ragkit.loaders.html import HtmlLoader, html_to_text
from ragkit.loaders.loaderset import BUILTIN_LOADERS, FileLimits, LoaderSet
from ragkit.loaders.pdf import PdfLoader
from ragkit.loaders.structured import JsonlLoader, JsonLoader
from ragkit.loaders.tabular import CsvLoader
from ragkit.loaders.text import MarkdownLoader, TextLoader
from ragkit.loaders.word import DocxLoader

__all__ = [
    "BUILTIN_LOADERS",
    "DEFAULT_MAX_CHUNKS_PER_FILE",
    "ZIP_SUFFIXES",
    "ArchiveLimitError",
    "ArchiveLimits",
    "BaseLoader",
    "CsvLoader",
    "DocxLoader",
    "FileLimits",
    "HtmlLoader",
    "JsonLoader",
    "JsonlLoader",
    "LoaderError",
    "LoaderSet",
    "MarkdownLoader",
    "PdfLoader",
    "SourceFile",
    "TextLoader",
    "UnsupportedFileError",
    "check_archive",
    "decode_bytes",
    "discover",
    "glob_to_regex",
    "html_to_text",
    "matches_any",
    "read_text",
    "source_prefix",
]
