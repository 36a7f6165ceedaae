"""ragkit loader for the long tail of formats, through unstructured, offline.

Installing ``ragkit-unstructured`` registers the ``unstructured`` loader
(entry point ``loader.unstructured``); ragkit then reads .pptx, .xlsx, .xls,
.eml, .msg, .epub, .rtf, .odt, .org, .rst and .xml files, and .doc/.ppt
where LibreOffice is installed. unstructured itself is imported only when a
file is read.
"""

from __future__ import annotations

from ragkit_unstructured.loader import (
    NEEDS_LIBREOFFICE,
    NEEDS_PANDOC,
    PARTITIONERS,
    UnstructuredLoader,
    libreoffice_path,
    pandoc_path,
    render_elements,
)

__all__ = [
    "NEEDS_LIBREOFFICE",
    "NEEDS_PANDOC",
    "PARTITIONERS",
    "UnstructuredLoader",
    "libreoffice_path",
    "pandoc_path",
    "render_elements",
]
