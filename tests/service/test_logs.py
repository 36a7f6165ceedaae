"""The JSON log formatter."""

from __future__ import annotations

import json
import logging
import sys

from ragkit.service.logs import JsonFormatter


def test_json_formatter_writes_fields_and_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("ragkit.service", logging.ERROR, __file__, 1, "failed %s", ("x",), exc_info)
    record.fields = {"request_id": "r1", "status": 500}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "failed x" and data["level"] == "ERROR" and data["logger"] == "ragkit.service"
    assert data["request_id"] == "r1" and data["status"] == 500
    assert "ValueError: boom" in data["traceback"] and data["ts"].endswith("+00:00")
