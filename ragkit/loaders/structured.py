"""JSON and JSON Lines: one document per record, the text taken from a chosen field."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigError, LoaderError
from ragkit.loaders.base import RESERVED_METADATA, BaseLoader
from ragkit.loaders.encoding import check_encoding_name, iter_lines, read_text
from ragkit.registry import register
from ragkit.schema import Document, Metadata

_MISSING = object()


def _lookup(record: Any, dotted: str) -> Any:
    """``record["a"]["b"]`` for ``"a.b"``; a numeric part indexes a list. ``_MISSING`` when absent."""
    value = record
    for part in dotted.split("."):
        if isinstance(value, dict):
            if part not in value:
                return _MISSING
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(value) <= index < len(value):
                return _MISSING
            value = value[index]
        else:
            return _MISSING
    return value


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class _RecordReader:
    """What the JSON and JSON Lines loaders share: turning one record into a document."""

    def __init__(self, loader: _JsonBase, path: Path, source: str, where: str) -> None:
        self.loader = loader
        self.path = path
        self.source = source
        self.where = where  # "item" or "line"
        self.seen_ids: dict[str, int] = {}

    def fail(self, position: int, reason: str) -> LoaderError:
        return LoaderError(str(self.path), f"{self.where} {position}: {reason}")

    def document(self, record: Any, position: int, fragment: str | None, encoding: str) -> Document | None:
        loader = self.loader
        metadata = loader.base_metadata(self.path, self.source, encoding=encoding)
        if fragment is not None:
            metadata[self.where] = position
            # the row a citation names, 1-based: the array item's position, or the file's line number
            metadata["row"] = position + 1 if self.where == "item" else position
        text: str | None
        if isinstance(record, str):
            text = record
        elif isinstance(record, dict):
            value = _lookup(record, loader.text_field)
            if value is _MISSING:
                present = ", ".join(sorted(map(str, record))) or "none"
                raise self.fail(
                    position,
                    f"no field {loader.text_field!r} (set the loader option text_field; fields present: {present})",
                )
            text = self._text_of(value, position)
            metadata.update(self._metadata_of(record))
            if loader.id_field is not None:
                record_id = _lookup(record, loader.id_field)
                if record_id is _MISSING or not _is_scalar(record_id) or record_id is None:
                    raise self.fail(position, f"no usable id in field {loader.id_field!r}")
                key = str(record_id)
                if key in self.seen_ids:
                    raise self.fail(position, f"duplicate id {key!r} (also at {self.where} {self.seen_ids[key]})")
                self.seen_ids[key] = position
                metadata["record_id"] = key
                fragment = f"id={key}"
        else:
            raise self.fail(position, f"is a {type(record).__name__}, expected an object or a string")
        if text is None or not text.strip():
            return None
        return loader.make_document(self.source, text, metadata, fragment=fragment)

    def _text_of(self, value: Any, position: int) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return str(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "\n\n".join(value)
        raise self.fail(position, f"field {self.loader.text_field!r} holds a {type(value).__name__}, expected text")

    def _metadata_of(self, record: dict[str, Any]) -> Metadata:
        loader = self.loader
        kept: Metadata = {}
        if loader.metadata_fields is None:
            skip = {loader.text_field.split(".")[0]}
            for key, value in record.items():
                if key not in skip and key not in RESERVED_METADATA and _is_scalar(value):
                    kept[str(key)] = value
        else:
            for name in loader.metadata_fields:
                value = _lookup(record, name)
                if value is not _MISSING and _is_scalar(value) and name not in RESERVED_METADATA:
                    kept[name] = value
        return kept


class _JsonBase(BaseLoader):
    def __init__(
        self,
        text_field: str = "text",
        metadata_fields: Sequence[str] | None = None,
        id_field: str | None = None,
        encoding: str | None = None,
    ) -> None:
        kind = self.component_type or "json"
        if not isinstance(text_field, str) or not text_field:
            raise ConfigError(f"loader {kind!r}: text_field must be a non-empty field name, got {text_field!r}")
        if metadata_fields is not None and (
            isinstance(metadata_fields, str) or not all(isinstance(f, str) and f for f in metadata_fields)
        ):
            raise ConfigError(
                f"loader {kind!r}: metadata_fields must be a list of field names, got {metadata_fields!r}"
            )
        if id_field is not None and (not isinstance(id_field, str) or not id_field):
            raise ConfigError(f"loader {kind!r}: id_field must be a field name, got {id_field!r}")
        self.text_field = text_field
        self.metadata_fields = list(metadata_fields) if metadata_fields is not None else None
        self.id_field = id_field
        self.encoding = check_encoding_name(encoding)


@register("loader", "json")
class JsonLoader(_JsonBase):
    """A JSON file: an array gives one document per element, an object one document.

    Options: ``text_field`` (dotted path, default ``"text"``), ``metadata_fields``
    (dotted paths; default every other scalar top-level field), ``id_field``
    (a field whose value makes the document id stable across reordering;
    default: the element's index). Each element's document has metadata
    ``item`` (0-based index) and ``row`` (its 1-based position, what a
    citation names). Elements may also be plain strings. A
    record whose text is empty is skipped; a record without the text field
    fails the file.
    """

    extensions = (".json",)

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """One document per element (array) or for the object."""
        raw, encoding = read_text(path, self.encoding)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LoaderError(str(path), f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        except RecursionError:
            raise LoaderError(str(path), "invalid JSON: nested too deeply") from None
        reader = _RecordReader(self, path, source, "item")
        if isinstance(data, list):
            for index, record in enumerate(data):
                document = reader.document(record, index, f"item={index}", encoding)
                if document is not None:
                    yield document
        elif isinstance(data, dict | str):
            document = reader.document(data, 0, None, encoding)
            if document is not None:
                yield document
        else:
            raise LoaderError(str(path), f"the JSON holds a {type(data).__name__}, expected an object or an array")


@register("loader", "jsonl")
class JsonlLoader(_JsonBase):
    """JSON Lines: one document per line (same options as ``json``), read as a stream.

    Each document has metadata ``line`` and ``row``: the line's 1-based number
    in the file (blank lines count, so it is the line an editor shows).

    Blank lines are skipped. A line that is not valid JSON fails the whole
    file, naming the line number (documents of earlier lines may already
    have been yielded: callers drop the file's documents on error).
    """

    extensions = (".jsonl", ".ndjson")

    def load(self, path: Path, source: str) -> Iterator[Document]:
        """One document per non-blank line."""
        reader = _RecordReader(self, path, source, "line")
        for number, (line, encoding) in enumerate(iter_lines(path, self.encoding), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LoaderError(
                    str(path),
                    f"line {number}: invalid JSON at column {exc.colno}: {exc.msg} (the whole file is refused)",
                ) from None
            except RecursionError:
                raise LoaderError(str(path), f"line {number}: invalid JSON: nested too deeply") from None
            document = reader.document(record, number, f"line={number}", encoding)
            if document is not None:
                yield document
