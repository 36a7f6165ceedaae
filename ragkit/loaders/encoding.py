"""Text decoding shared by the text-based loaders.

The rules, in order:

1. A forced encoding (``LoaderOptions.encoding``) is used as is, strictly;
   a byte it cannot decode is an error naming the byte offset.
2. A byte-order mark decides (UTF-8, UTF-16, UTF-32).
3. NUL bytes in the first 8 KiB mean a binary file, not text.
4. Valid UTF-8 is UTF-8.
5. Otherwise charset-normalizer guesses; when nothing plausible fits the
   file is refused as binary, naming the first byte that is not UTF-8.

Large files are decoded incrementally (:func:`open_text`), the encoding being
chosen from a sample of the file's start.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from ragkit.errors import ConfigError, LoaderError

BINARY_SNIFF_BYTES = 8192
DETECT_SAMPLE_BYTES = 1 << 20
"""How much of a large file's start is used to choose its encoding."""

# When charset-normalizer finds several legacy encodings about equally good
# (usual on short texts), prefer the ones most text is actually written in.
_PREFERRED_LEGACY = ("cp1252", "latin_1", "iso8859_15")
_TIE_MARGIN = 0.11

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def check_encoding_name(encoding: str | None) -> str | None:
    """Validate an encoding option when a loader is built (``ConfigError`` if unknown)."""
    if encoding is None:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"unknown text encoding {encoding!r}") from None


def _bom_encoding(data: bytes) -> str | None:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    return None


def _looks_binary(head: bytes) -> bool:
    return b"\x00" in head[:BINARY_SNIFF_BYTES]


def _bad_byte_reason(exc: UnicodeDecodeError, encoding: str, offset_base: int = 0) -> str:
    position = offset_base + exc.start
    bad = exc.object[exc.start : exc.start + 1]
    shown = f"0x{bad[0]:02x} " if bad else ""
    return f"cannot decode as {encoding}: invalid byte {shown}at byte offset {position}"


def _first_bad_utf8(exc: UnicodeDecodeError) -> str:
    bad = exc.object[exc.start : exc.start + 1]
    shown = f"0x{bad[0]:02x} " if bad else ""
    return f"not valid UTF-8 (first bad byte {shown}at byte offset {exc.start})"


def _guess_legacy(sample: bytes) -> str | None:
    """charset-normalizer's guess for non-UTF-8 bytes, or None when nothing plausible fits."""
    from charset_normalizer import from_bytes

    results = from_bytes(sample)
    best = results.best()
    if best is None:
        return None
    for preferred in _PREFERRED_LEGACY:
        for match in results:
            if match.encoding == preferred and match.chaos <= best.chaos + _TIE_MARGIN:
                return preferred
    return str(best.encoding)


def _declared_html_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    if not match:
        return None
    try:
        return codecs.lookup(match.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None


def decode_bytes(data: bytes, path: str, encoding: str | None = None, *, html: bool = False) -> tuple[str, str]:
    """Decode a whole file's bytes by the rules above; returns ``(text, encoding)``.

    ``html=True`` also honours a ``<meta charset>`` declaration when the bytes
    are not UTF-8. Raises :class:`LoaderError` naming ``path``.
    """
    if not data:
        raise LoaderError(path, "file is empty")
    if encoding is not None:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            raise LoaderError(path, _bad_byte_reason(exc, encoding)) from None
        except LookupError:
            raise LoaderError(path, f"unknown text encoding {encoding!r}") from None
    bom = _bom_encoding(data)
    if bom is not None:
        try:
            return data.decode(bom), bom
        except UnicodeDecodeError as exc:
            raise LoaderError(path, _bad_byte_reason(exc, bom)) from None
    if _looks_binary(data):
        raise LoaderError(path, "looks like a binary file, not text (NUL bytes near the start)")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    candidates: list[str] = []
    if html:
        declared = _declared_html_charset(data)
        if declared:
            candidates.append(declared)
    guessed = _guess_legacy(data[:DETECT_SAMPLE_BYTES])
    if guessed:
        candidates.append(guessed)
    for candidate in candidates:
        try:
            return data.decode(candidate), candidate
        except (UnicodeDecodeError, LookupError):
            continue
    raise LoaderError(
        path,
        f"{_first_bad_utf8(utf8_error)} and no other text encoding fits: looks like a binary file, not text "
        "(set the loader option 'encoding' to force one)",
    )


def read_text(path: Path, encoding: str | None = None, *, html: bool = False) -> tuple[str, str]:
    """Read and decode a whole file; ``(text, encoding)``. OS errors become :class:`LoaderError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(str(path), f"cannot read file: {exc.strerror or exc}") from None
    return decode_bytes(data, str(path), encoding, html=html)


def _sample_encoding(path: Path, sample: bytes, encoding: str | None) -> str:
    """Choose the encoding of a file to be decoded incrementally, from its first bytes."""
    if not sample:
        raise LoaderError(str(path), "file is empty")
    if encoding is not None:
        return encoding
    bom = _bom_encoding(sample)
    if bom is not None:
        return bom
    if _looks_binary(sample):
        raise LoaderError(str(path), "looks like a binary file, not text (NUL bytes near the start)")
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # a multi-byte character cut by the end of the sample is fine
        if exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return "utf-8"
        utf8_error = exc
    guessed = _guess_legacy(sample)
    if guessed is None:
        raise LoaderError(
            str(path),
            f"{_first_bad_utf8(utf8_error)} and no other text encoding fits: looks like a binary file, not text "
            "(set the loader option 'encoding' to force one)",
        )
    return guessed


def iter_decoded(path: Path, encoding: str | None = None, block_bytes: int = 1 << 20) -> Iterator[tuple[str, str]]:
    """Decode a file incrementally: yields ``(text_piece, encoding)`` per block read.

    Memory stays bounded by ``block_bytes`` (plus the detection sample). A
    byte that cannot be decoded later in the file raises :class:`LoaderError`
    naming its absolute byte offset.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise LoaderError(str(path), f"cannot read file: {exc.strerror or exc}") from None
    with handle:
        try:
            sample = handle.read(max(block_bytes, DETECT_SAMPLE_BYTES))
        except OSError as exc:
            raise LoaderError(str(path), f"cannot read file: {exc.strerror or exc}") from None
        chosen = _sample_encoding(path, sample, encoding)
        try:
            decoder = codecs.getincrementaldecoder(chosen)(errors="strict")
        except LookupError:
            raise LoaderError(str(path), f"unknown text encoding {chosen!r}") from None
        consumed = 0  # bytes fed to the decoder before the current block
        block = sample
        while True:
            final = not block
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as exc:
                # offsets inside the decoder's buffer: pending bytes come first
                pending = len(decoder.getstate()[0])
                raise LoaderError(str(path), _bad_byte_reason(exc, chosen, max(consumed - pending, 0))) from None
            if text:
                yield text, chosen
            if final:
                return
            consumed += len(block)
            try:
                block = handle.read(block_bytes)
            except OSError as exc:
                raise LoaderError(str(path), f"cannot read file: {exc.strerror or exc}") from None


def iter_lines(path: Path, encoding: str | None = None) -> Iterator[tuple[str, str]]:
    """Decode a file incrementally and yield ``(line, encoding)``, each line with its newline.

    Only a line feed ends a line here (a carriage return before it stays),
    which is what the csv module and JSON Lines expect.
    """
    pending = ""
    last = encoding or "utf-8"
    for piece, chosen in iter_decoded(path, encoding):
        pending += piece
        start = 0
        while True:
            end = pending.find("\n", start)
            if end < 0:
                break
            yield pending[start : end + 1], chosen
            start = end + 1
        pending = pending[start:]
        last = chosen
    if pending:
        yield pending, last
