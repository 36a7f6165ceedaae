"""Limits on zip-based documents (docx, pptx, xlsx, odt, epub ...): no decompression bombs.

A .docx, .pptx, .xlsx, .odt or .epub file is a zip archive of XML. A few
hundred kilobytes of zip can unpack to gigabytes of XML, and a parser that
reads it takes minutes and gigabytes of memory. :func:`check_archive` is run
by every zip-based loader before its parser sees the file:

1. from the zip directory alone, nothing decompressed: the number of
   members, each member's declared unpacked size, the total, and each large
   member's compression ratio, against :class:`ArchiveLimits`;
2. then each member is inflated as a stream (a small buffer, nothing kept)
   and reading stops as soon as more bytes come out than the directory
   declared, so a directory that lies about sizes is caught too.

A file over a limit raises :class:`ArchiveLimitError` (a
:class:`~ragkit.errors.LoaderError`) naming the file, the member and the
limit, so one bad file fails alone and the rest of an ingest goes on.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigError, LoaderError
from ragkit.limits import (
    DEFAULT_MAX_ARCHIVE_MEMBERS,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_MEMBER_BYTES,
    DEFAULT_MAX_UNPACKED_BYTES,
)

ZIP_SUFFIXES: frozenset[str] = frozenset(
    {
        ".docx",
        ".docm",
        ".dotx",
        ".pptx",
        ".pptm",
        ".xlsx",
        ".xlsm",
        ".odt",
        ".ods",
        ".odp",
        ".epub",
    }
)
"""Suffixes of document formats that are zip archives; :class:`~ragkit.loaders.LoaderSet` checks them all."""

RATIO_CHECK_MIN_BYTES = 1_000_000
"""A member is held to ``max_compression_ratio`` only when it unpacks to at least this many bytes."""

_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_READ_BLOCK = 1 << 16
_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 0xFFFF  # the record and the longest archive comment


class ArchiveLimitError(LoaderError):
    """A zip-based file is over one of the :class:`ArchiveLimits` (or its directory lies about sizes)."""

    def __init__(self, path: str, reason: str, limit: str) -> None:
        super().__init__(path, reason)
        self.limit = limit
        """The option whose limit was passed (``max_unpacked_bytes`` ...), or ``declared_size``."""


def _positive(name: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"archive limit {name} must be a positive {kind.__name__} or null (no limit), not {value!r}")
    if value <= 0:
        raise ConfigError(f"archive limit {name} must be positive or null (no limit), not {value!r}")
    return value


@dataclass(frozen=True)
class ArchiveLimits:
    """How far a zip-based document may unpack; ``None`` lifts one limit.

    The same names are loader options of the zip-based loaders (``docx``,
    and ``unstructured`` for pptx, xlsx, odt and epub), e.g.
    ``{".docx": {"type": "docx", "max_unpacked_bytes": 200000000}}``.
    """

    max_unpacked_bytes: int | None = DEFAULT_MAX_UNPACKED_BYTES
    """Total unpacked size of all members, in bytes."""
    max_member_bytes: int | None = DEFAULT_MAX_MEMBER_BYTES
    """Unpacked size of any one member, in bytes."""
    max_archive_members: int | None = DEFAULT_MAX_ARCHIVE_MEMBERS
    """Number of members (files and folders) in the archive."""
    max_compression_ratio: float | None = DEFAULT_MAX_COMPRESSION_RATIO
    """Unpacked size over packed size of a member of at least :data:`RATIO_CHECK_MIN_BYTES`."""

    def __post_init__(self) -> None:
        """Refuse a limit that is not a positive number (a :class:`~ragkit.errors.ConfigError`)."""
        _positive("max_unpacked_bytes", self.max_unpacked_bytes, int)
        _positive("max_member_bytes", self.max_member_bytes, int)
        _positive("max_archive_members", self.max_archive_members, int)
        _positive("max_compression_ratio", self.max_compression_ratio, float)


def check_archive(path: Path, limits: ArchiveLimits | None = None) -> None:
    """Refuse ``path`` (a zip-based document) when it unpacks past ``limits``; see the module docstring.

    Raises :class:`ArchiveLimitError` naming the limit, or
    :class:`~ragkit.errors.LoaderError` when the file is not a zip archive
    at all. Memory stays small whatever the file holds: the directory is
    read first, and members are inflated in blocks that are not kept.
    """
    limits = limits or ArchiveLimits()
    where = str(path)
    suffix = path.suffix.lower() or "zip"
    try:
        _check_member_count(where, path, limits)
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_directory(where, members, limits)
            with open(path, "rb") as handle:
                for member in members:
                    _check_member_stream(where, archive, handle, member)
    except LoaderError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, struct.error, zlib.error, EOFError) as exc:
        raise LoaderError(where, f"not a valid {suffix} file (corrupt, or another format renamed?): {exc}") from None
    except OSError as exc:
        raise LoaderError(where, f"cannot read file: {exc.strerror or exc}") from None


def _too_many_members(where: str, count: int, limit: int) -> ArchiveLimitError:
    return ArchiveLimitError(
        where,
        f"the zip archive has {count:,} members, over the max_archive_members limit of {limit:,} "
        "(raise the loader option max_archive_members if the file is genuine)",
        "max_archive_members",
    )


def _check_member_count(where: str, path: Path, limits: ArchiveLimits) -> None:
    """Read the member count from the end-of-directory record, before the directory itself is parsed."""
    if limits.max_archive_members is None:
        return
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - _EOCD_SEARCH))
        tail = handle.read()
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or at + 12 > len(tail):
        return  # not a zip (or zip64 only): zipfile says so, or parses it
    (count,) = struct.unpack_from("<H", tail, at + 10)
    if count != 0xFFFF and count > limits.max_archive_members:
        raise _too_many_members(where, count, limits.max_archive_members)


def _check_directory(where: str, members: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    hint = "raise the loader option {name} if the file is genuine"
    if limits.max_archive_members is not None and len(members) > limits.max_archive_members:
        raise _too_many_members(where, len(members), limits.max_archive_members)
    total = 0
    for number, member in enumerate(members):
        size = member.file_size
        if limits.max_member_bytes is not None and size > limits.max_member_bytes:
            raise ArchiveLimitError(
                where,
                f"member {member.filename!r} unpacks to {size:,} bytes, over the max_member_bytes limit of "
                f"{limits.max_member_bytes:,} ({hint.format(name='max_member_bytes')})",
                "max_member_bytes",
            )
        ratio_limit = limits.max_compression_ratio
        packed = max(member.compress_size, 1)
        if ratio_limit is not None and size >= RATIO_CHECK_MIN_BYTES and size > ratio_limit * packed:
            ratio = size / packed
            raise ArchiveLimitError(
                where,
                f"member {member.filename!r} unpacks {ratio:,.0f} times its packed size ({member.compress_size:,} "
                f"bytes to {size:,}), over the max_compression_ratio limit of {ratio_limit:g} "
                f"(a decompression bomb?; {hint.format(name='max_compression_ratio')})",
                "max_compression_ratio",
            )
        total += size
        if limits.max_unpacked_bytes is not None and total > limits.max_unpacked_bytes:
            total += sum(m.file_size for m in members[number + 1 :])
            raise ArchiveLimitError(
                where,
                f"the zip archive unpacks to {total:,} bytes, over the max_unpacked_bytes limit of "
                f"{limits.max_unpacked_bytes:,} ({hint.format(name='max_unpacked_bytes')})",
                "max_unpacked_bytes",
            )


def _lying(where: str, member: zipfile.ZipInfo) -> ArchiveLimitError:
    return ArchiveLimitError(
        where,
        f"member {member.filename!r} unpacks to more than the {member.file_size:,} bytes its zip directory "
        "declares (a forged or corrupt archive); reading stopped there",
        "declared_size",
    )


def _check_member_stream(where: str, archive: zipfile.ZipFile, handle: Any, member: zipfile.ZipInfo) -> None:
    """Inflate one member in blocks, stopping as soon as it passes its declared size."""
    if member.is_dir() or member.flag_bits & 0x1:  # folders hold nothing; encrypted members cannot be read
        return
    if member.compress_type == zipfile.ZIP_STORED:
        if member.compress_size != member.file_size:
            raise _lying(where, member)
        return
    if member.compress_type != zipfile.ZIP_DEFLATED:
        # bzip2/lzma: zipfile itself never returns more than the declared size; read it through with a cap
        with archive.open(member) as stream:
            while stream.read(_READ_BLOCK):
                pass
        return
    # deflate: inflate the raw stream from the local header on, independent of the sizes declared anywhere,
    # the way a parser that trusts only the deflate stream (pandoc's, for instance) would read it
    handle.seek(member.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
    if signature != _LOCAL_SIGNATURE:
        raise zipfile.BadZipFile(f"bad local header for member {member.filename!r}")
    handle.seek(name_length + extra_length, 1)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    produced = 0
    pending = b""
    while not inflater.eof:
        if not pending:
            pending = handle.read(_READ_BLOCK)
            if not pending:
                return  # truncated: the parser reports the damage
        produced += len(inflater.decompress(pending, _READ_BLOCK))
        pending = inflater.unconsumed_tail
        if produced > member.file_size:
            raise _lying(where, member)


__all__ = [
    "DEFAULT_MAX_ARCHIVE_MEMBERS",
    "DEFAULT_MAX_COMPRESSION_RATIO",
    "DEFAULT_MAX_MEMBER_BYTES",
    "DEFAULT_MAX_UNPACKED_BYTES",
    "RATIO_CHECK_MIN_BYTES",
    "ZIP_SUFFIXES",
    "ArchiveLimitError",
    "ArchiveLimits",
    "check_archive",
]
