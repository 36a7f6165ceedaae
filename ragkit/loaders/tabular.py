"""CSV and TSV files: one document per row, or the whole file as one document."""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from ragkit.errors import ConfigError, LoaderError
from ragkit.loaders.base import RESERVED_METADATA, BaseLoader
from ragkit.loaders.encoding import check_encoding_name, iter_lines, read_text
from ragkit.registry import register
from ragkit.schema import Document

CsvMode = Literal["row", "file"]
SNIFF_BYTES = 64 * 1024
_INTEGER = re.compile(r"-?(?:[1-9][0-9]*|0)")
_FLOAT = re.compile(r"-?(?:[1-9][0-9]*|0)?\.[0-9]+(?:[eE][-+]?[0-9]+)?|-?(?:[1-9][0-9]*|0)[eE][-+]?[0-9]+")


def _typed(value: str) -> Any:
    """A metadata value: an int or float when the cell is exactly one, else the string."""
    text = value.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return value


def _unique_header(row: list[str]) -> list[str]:
    header: list[str] = []
    for index, name in enumerate(row, start=1):
        name = name.strip() or f"column_{index}"
        candidate, n = name, 2
        while candidate in header:
            candidate, n = f"{name}_{n}", n + 1
        header.append(candidate)
    return header


@register("loader", "csv")
class CsvLoader(BaseLoader):
    """CSV (and TSV) files with a header row; the delimiter is sniffed unless given.

    ``mode="row"`` (default): one document per row, its text the
    ``text_columns`` (default: all) as ``column: value`` lines, its metadata
    ``row`` (the 1-based data row: the header is not counted, so the first row
    under the header is row 1; a quoted cell spanning lines is still one row)
    and the ``metadata_columns``
    (numbers become numbers). Rows with no text are skipped. Read as a
    stream, so large files are fine. ``mode="file"``: the whole file is one
    document.
    """

    extensions = (".csv", ".tsv")

    def __init__(
        self,
        mode: CsvMode = "row",
        text_columns: Sequence[str] | None = None,
        metadata_columns: Sequence[str] | None = None,
        delimiter: str | None = None,
        encoding: str | None = None,
    ) -> None:
        if mode not in ("row", "file"):
            raise ConfigError(f"loader 'csv': mode must be 'row' or 'file', got {mode!r}")
        for name, columns in (("text_columns", text_columns), ("metadata_columns", metadata_columns)):
            if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
                raise ConfigError(f"loader 'csv': {name} must be a list of column names, got {columns!r}")
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
            raise ConfigError(f"loader 'csv': delimiter must be one character, got {delimiter!r}")
        self.mode = mode
        self.text_columns = list(text_columns) if text_columns is not None else None
        self.metadata_columns = list(metadata_columns) if metadata_columns is not None else []
        self.delimiter = delimiter
        self.encoding = check_encoding_name(encoding)

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """Documents per row (``mode="row"``) or one for the file."""
        if self.mode == "file":
            text, encoding = read_text(path, self.encoding)
            yield self.make_document(source, text, self.base_metadata(path, source, encoding=encoding))
            return
        yield from self._rows(path, source)

    def _sniff(self, path: Path, sample: str) -> str:
        if self.delimiter is not None:
            return self.delimiter
        default = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            return default

    def _rows(self, path: Path, source: str) -> Iterator[Document]:
        lines = iter_lines(path, self.encoding)
        head: list[str] = []
        encoding = self.encoding or "utf-8"
        size = 0
        for line, chosen in lines:
            encoding = chosen
            head.append(line)
            size += len(line)
            if size >= SNIFF_BYTES:
                break
        if not head:
            raise LoaderError(str(path), "file is empty")
        delimiter = self._sniff(path, "".join(head))
        all_lines = itertools.chain(head, (line for line, _ in lines))
        reader = csv.reader(all_lines, delimiter=delimiter)
        try:
            header = _unique_header(next(reader))
            self._check_columns(path, header)
            text_columns = self.text_columns if self.text_columns is not None else header
            for row_number, row in enumerate(reader, start=1):
                if not any(cell.strip() for cell in row):
                    continue
                values = dict(zip(header, row, strict=False))
                extra = {f"column_{i}": cell for i, cell in enumerate(row[len(header) :], start=len(header) + 1)}
                columns = text_columns if self.text_columns is not None or not extra else [*header, *extra]
                values.update(extra)
                lines_out = [f"{name}: {values[name].strip()}" for name in columns if values.get(name, "").strip()]
                if not lines_out:
                    continue
                metadata = self.base_metadata(path, source, encoding=encoding, row=row_number)
                for name in self.metadata_columns:
                    if name not in RESERVED_METADATA and values.get(name, "").strip():
                        metadata[name] = _typed(values[name])
                yield self.make_document(source, "\n".join(lines_out), metadata, fragment=f"row={row_number}")
        except csv.Error as exc:
            raise LoaderError(str(path), f"line {reader.line_num}: malformed CSV: {exc}") from None

    def _check_columns(self, path: Path, header: list[str]) -> None:
        wanted = [*(self.text_columns or []), *self.metadata_columns]
        missing = [name for name in wanted if name not in header]
        if missing:
            raise LoaderError(
                str(path),
                f"no column(s) {', '.join(map(repr, missing))}; the header has: {', '.join(header)}",
            )
