"""Default limits on what one ingested file may cost: chunks, and how far a zip-based document may unpack.

A leaf module (it imports nothing from ragkit), so both the configuration
models (:class:`ragkit.config.LoaderOptions`) and the loaders that apply the
limits (:mod:`ragkit.loaders.archive_limits`, :mod:`ragkit.loaders.loaderset`)
read the same numbers.
"""

from __future__ import annotations

DEFAULT_MAX_CHUNKS_PER_FILE = 100_000
"""Default cap on the chunks one file may give (a 100 MB text in 1,000-character chunks)."""

DEFAULT_MAX_UNPACKED_BYTES = 50_000_000
"""Default total unpacked size of one archive (50 MB of XML is a very long document)."""
DEFAULT_MAX_MEMBER_BYTES = 50_000_000
"""Default unpacked size of one member (by default one member may use the whole budget)."""
DEFAULT_MAX_ARCHIVE_MEMBERS = 10_000
"""Default number of members (a real document has tens to a few thousand)."""
DEFAULT_MAX_COMPRESSION_RATIO = 200.0
"""Default unpacked/packed ratio of one large member (real XML packs about 5 to 30 times)."""

__all__ = [
    "DEFAULT_MAX_ARCHIVE_MEMBERS",
    "DEFAULT_MAX_CHUNKS_PER_FILE",
    "DEFAULT_MAX_COMPRESSION_RATIO",
    "DEFAULT_MAX_MEMBER_BYTES",
    "DEFAULT_MAX_UNPACKED_BYTES",
]
