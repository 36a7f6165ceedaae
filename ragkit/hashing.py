"""Content hashes and stable identifiers.

Every id is derived from content and location, never from time or a random
source, so ingesting the same file twice yields the same ids.
"""

from __future__ import annotations

import hashlib


def content_hash(data: str | bytes) -> str:
    """Return the hex BLAKE2b-128 digest of ``data`` (text is UTF-8 encoded)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def document_id(source: str) -> str:
    """Stable id of the document found at ``source`` (a URI or relative path)."""
    return content_hash("doc\x00" + source)


def chunk_id(doc_id: str, start: int, end: int, text_hash: str) -> str:
    """Stable id of a chunk: its document, its span and its text."""
    return content_hash(f"chunk\x00{doc_id}\x00{start}\x00{end}\x00{text_hash}")
