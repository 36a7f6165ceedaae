"""Receiving uploaded files: a streaming multipart parser that writes each file to a staging folder.

The request body is parsed as it arrives (``python-multipart``), each ``files``
part goes straight to its own file in a per-request staging folder, and a byte
counter aborts the upload with 413 as soon as one file passes the limit. File
names are checked before a byte is written: an empty name, one containing
``..``, a path separator or a NUL, a hidden name (leading dot) or an over-long
one is refused with 400 naming the file. The declared content type is kept for
the record only: the loader is chosen by the file's suffix and checks the
content itself. Disk writes run in a worker thread.

A form field ``source_prefix`` (text, at most 1,024 bytes, anywhere in the
body) puts the uploaded files' source ids under a folder: ``hr/`` and a file
``a.docx`` give the source ``hr/a.docx`` (see
:func:`ragkit.loaders.source_prefix` for what a prefix may be).

The staging folder gets a marker, ``.upload.json`` (the collection and when the
upload began), with its first byte, so a service killed while receiving an
upload, before its job was recorded, finds the folder at its next start and
reports it (:func:`staged_uploads`, :func:`ragkit.service.job_recovery.recover`).
Uploaded names never start with a dot, so the marker cannot clash with a file.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ragkit.errors import InputError, storage_errors
from ragkit.loaders.discovery import source_prefix
from ragkit.service.errors import ServiceHTTPError

FILE_FIELD = "files"
"""The multipart field name that carries files."""
PREFIX_FIELD = "source_prefix"
"""The multipart field name of the optional source prefix (text)."""
_MAX_PREFIX_BYTES = 1024
_MAX_NAME_BYTES = 255
MARKER = ".upload.json"
"""The file in each staging folder that says which collection the upload is for."""


@dataclass(slots=True)
class StagedFile:
    """One uploaded file, written to the staging folder."""

    name: str
    path: Path
    size: int = 0
    content_type: str = ""


def check_file_name(name: str) -> str:
    """``name`` if it is a safe plain file name, else :class:`InputError` naming it."""
    if not name or not name.strip():
        raise InputError("an uploaded file has an empty file name")
    shown = name.encode("unicode_escape").decode("ascii")
    if "\x00" in name:
        raise InputError(f"file name {shown!r} contains a NUL character")
    if "/" in name or "\\" in name:
        raise InputError(f"file name {shown!r} contains a path separator; send plain file names")
    if ".." in name:
        raise InputError(f"file name {shown!r} contains '..'")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise InputError(f"file name {shown!r} contains control characters")
    if name.startswith("."):
        raise InputError(f"file name {shown!r} is hidden (starts with '.') and would not be ingested")
    if name != name.strip():
        raise InputError(f"file name {shown!r} has leading or trailing spaces")
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        raise InputError(f"file name {shown[:40]!r}... is longer than {_MAX_NAME_BYTES} bytes")
    return name


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    staged: StagedFile | None = None
    handle: BinaryIO | None = None
    skip: bool = False
    text: bytearray | None = None
    """The value of a text field that is kept (``source_prefix``)."""


class UploadReceiver:
    """Parses one multipart upload into staged files; see the module docstring."""

    def __init__(
        self,
        content_type: str,
        staging_root: Path,
        max_file_bytes: int,
        max_files: int,
        run_blocking: Callable[..., Any],
        collection: str | None = None,
    ) -> None:
        kind, params = parse_options_header(content_type or "")
        if kind != b"multipart/form-data":
            raise ServiceHTTPError(
                415,
                f"expected a multipart/form-data body with one or more '{FILE_FIELD}' parts, got "
                f"{content_type or 'no content type'!r}",
                "UnsupportedMediaType",
            )
        boundary = params.get(b"boundary")
        if not boundary:
            raise InputError("the multipart body has no boundary in its Content-Type")
        self.boundary = boundary
        self.folder = staging_root / uuid.uuid4().hex
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.run_blocking = run_blocking
        self.collection = collection
        self.started_at = datetime.now(UTC)
        self.files: list[StagedFile] = []
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""
        self._writes: list[tuple[_Part, bytes]] = []
        self._opens: list[_Part] = []
        self._closes: list[_Part] = []
        self._handles: list[BinaryIO] = []
        self.source_prefix = ""
        """The ``source_prefix`` field, checked and ending in ``/`` (``""``: none)."""

    # -- parser callbacks (synchronous, no I/O) ---------------------------------------------

    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._part.headers[self._header_name.lower()] = self._header_value
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        field_name = options.get(b"name", b"").decode("utf-8", "replace")
        if field_name == PREFIX_FIELD:
            self._part.text = bytearray()
            return
        if field_name != FILE_FIELD:
            self._part.skip = True  # other form fields are ignored
            return
        name = check_file_name(options.get(b"filename", b"").decode("utf-8", "replace"))
        if any(f.name == name for f in self.files):
            raise InputError(f"file name {name!r} is sent twice in one upload")
        if len(self.files) >= self.max_files:
            raise ServiceHTTPError(
                413, f"too many files in one upload: the limit is {self.max_files}", "PayloadTooLarge"
            )
        content_type = self._part.headers.get(b"content-type", b"").decode("latin-1")
        staged = StagedFile(name, self.folder / name, 0, content_type)
        self.files.append(staged)
        self._part.staged = staged
        self._opens.append(self._part)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.text is not None:
            part.text += data[start:end]
            if len(part.text) > _MAX_PREFIX_BYTES:
                raise InputError(f"the {PREFIX_FIELD} field is longer than {_MAX_PREFIX_BYTES} bytes")
            return
        if part.skip or part.staged is None:
            return
        part.staged.size += end - start
        if part.staged.size > self.max_file_bytes:
            raise ServiceHTTPError(
                413,
                f"file {part.staged.name!r} is larger than the {self.max_file_bytes:,}-byte limit per file "
                "(setting max_upload_bytes); nothing was stored",
                "PayloadTooLarge",
            )
        self._writes.append((part, data[start:end]))

    def _on_part_end(self) -> None:
        if self._part.text is not None:
            try:
                value = bytes(self._part.text).decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"the {PREFIX_FIELD} field is not UTF-8 text") from None
            self.source_prefix = source_prefix(value)
        if self._part.staged is not None:
            self._closes.append(self._part)

    # -- driving ----------------------------------------------------------------------------

    def _flush(self) -> None:
        """Open, write and close files as the parser asked (runs in a worker thread).

        A full disk is a :class:`~ragkit.errors.StorageFullError` (507), a read-only
        one a :class:`~ragkit.errors.StorageReadOnlyError` (503), both naming the folder.
        """
        with storage_errors(f"cannot store the upload in {self.folder}"):
            if not self.folder.exists():
                self.folder.mkdir(parents=True)
                marker = {"collection": self.collection, "started_at": self.started_at.isoformat()}
                (self.folder / MARKER).write_text(json.dumps(marker), encoding="utf-8")
            for part in self._opens:
                assert part.staged is not None
                part.handle = open(part.staged.path, "wb")  # noqa: SIM115 - closed at the part's end
                self._handles.append(part.handle)
            for part, data in self._writes:
                assert part.handle is not None
                part.handle.write(data)
            for part in self._closes:
                assert part.handle is not None
                part.handle.close()
        self._opens, self._writes, self._closes = [], [], []

    async def receive(self, body: AsyncIterator[bytes]) -> list[StagedFile]:
        """Read the whole body into the staging folder; on any error the folder is removed."""
        callbacks: Any = {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
        }
        parser = MultipartParser(self.boundary, callbacks)
        try:
            async for chunk in body:
                parser.write(chunk)
                if self._opens or self._writes or self._closes:
                    await self.run_blocking(self._flush)
            parser.finalize()
            await self.run_blocking(self._flush)
        except FormParserError as exc:
            await self.discard()
            raise InputError(f"the multipart body is malformed: {exc}") from None
        except BaseException:
            await asyncio.shield(self.discard())
            raise
        if not self.files:
            await self.discard()
            raise InputError(f"no files in the upload: send one or more multipart parts named '{FILE_FIELD}'")
        return self.files

    async def discard(self) -> None:
        """Close and delete everything staged so far."""
        await self.run_blocking(self._remove)

    def _remove(self) -> None:
        for handle in self._handles:
            if not handle.closed:
                handle.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class StagedUpload:
    """A staging folder found on disk: its upload's collection (from the marker) and its files."""

    folder: Path
    collection: str | None
    started_at: str | None
    files: list[StagedFile]


def staged_uploads(staging_root: Path) -> list[StagedUpload]:
    """Every upload folder under ``staging_root`` with what its marker and files say (oldest names first)."""
    if not staging_root.is_dir():
        return []
    found = []
    for folder in sorted(staging_root.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            marker = {}
        if not isinstance(marker, dict):
            marker = {}
        files = [
            StagedFile(path.name, path, path.stat().st_size)
            for path in sorted(folder.iterdir())
            if path.is_file() and not path.name.startswith(".")
        ]
        collection = marker.get("collection")
        started = marker.get("started_at")
        found.append(
            StagedUpload(
                folder,
                collection if isinstance(collection, str) else None,
                started if isinstance(started, str) else None,
                files,
            )
        )
    return found
