"""Structured logging for the service: one JSON object per line, or one escaped text line per record."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

ACCESS_LOGGER = "ragkit.service.access"
"""Logger of the one-line-per-request access log."""


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, the record's ``fields``, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line of ``record``."""
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_control(text: str) -> str:
    """``text`` with control characters written as escapes (a newline as backslash-n ...), on one line."""
    return _CONTROL.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


class TextFormatter(logging.Formatter):
    """Plain one-line records: the message's control characters are escaped.

    A request path such as ``/x%0aFAKE 200`` is decoded to a newline before
    it is logged; written as it is, it would forge a second log line. A
    traceback keeps its lines, each indented under its record.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The record's line with an escaped message."""
        return self._style.format(_Escaped(record))

    def formatException(self, ei: Any) -> str:
        """The traceback, each line indented, control characters other than the line breaks escaped."""
        lines = super().formatException(ei).splitlines()
        return "\n".join("    " + escape_control(line) for line in lines)


class _Escaped:
    """A view of a record whose ``message`` is escaped (the record itself is shared by every handler)."""

    def __init__(self, record: logging.LogRecord) -> None:
        self.__dict__.update(record.__dict__)
        self.message = escape_control(record.message)


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Send every log record (uvicorn's included) to stderr, as JSON lines or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
