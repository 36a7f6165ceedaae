"""Reading a pydantic object out of a judge's free text.

Small and local models wrap JSON in prose or code fences, use single
quotes, Python literals or trailing commas, and answer with a bare list
where an object with one list field was asked for. :func:`parse_structured`
tries the likely JSON pieces of the text, each as written and lightly
repaired, and returns the first that validates; otherwise it raises
:class:`UnparsableOutput` with a short reason (which the judge sends back
to the model when it asks again).
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_PY_LITERALS = re.compile(r"\b(True|False|None)\b")
_MAX_CANDIDATES = 8


class UnparsableOutput(ValueError):
    """The judge's answer holds no JSON that fits the expected schema."""


def parse_structured(text: str, model: type[M]) -> M:
    """The first JSON piece of ``text`` that validates as ``model``.

    Raises:
        UnparsableOutput: nothing in the text fits; the message says why
            (no JSON at all, or the schema error of the best candidate).

    """
    problem = "the answer holds no JSON object"
    for candidate in _candidates(text):
        for variant in _variants(candidate):
            try:
                data = json.loads(variant)
            except ValueError:
                continue
            for shaped in _shapes(data, model):
                try:
                    return model.model_validate(shaped)
                except ValidationError as exc:
                    problem = _validation_summary(exc)
    raise UnparsableOutput(problem)


def _candidates(text: str) -> list[str]:
    """Pieces of ``text`` that may be JSON: fenced blocks, balanced ``{...}``/``[...]``, the whole text."""
    found: list[str] = [m.group(1).strip() for m in _FENCE.finditer(text)]
    for opener in "{[":
        start = text.find(opener)
        while start >= 0 and len(found) < _MAX_CANDIDATES:
            end = _balanced_end(text, start)
            if end is None:
                found.append(text[start:])  # cut off: the repairs may still close it
                break
            found.append(text[start:end])
            start = text.find(opener, end)
    found.append(text.strip())
    seen: set[str] = set()
    unique = []
    for piece in found:
        if piece and piece not in seen:
            seen.add(piece)
            unique.append(piece)
    return unique


def _balanced_end(text: str, start: int) -> int | None:
    """The index just past the bracket that closes ``text[start]``, minding strings; ``None`` if unclosed."""
    depth = 0
    in_string: str | None = None
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == in_string:
                in_string = None
            continue
        if char == '"':
            in_string = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _variants(candidate: str) -> list[str]:
    """The candidate as written, then with common slips repaired."""
    repaired = _TRAILING_COMMA.sub(r"\1", candidate)
    repaired = _PY_LITERALS.sub(lambda m: {"True": "true", "False": "false", "None": "null"}[m.group(1)], repaired)
    variants = [candidate, repaired]
    if "'" in repaired and '"' not in repaired:
        variants.append(repaired.replace("'", '"'))
    closed = _close_brackets(repaired)
    if closed != repaired:
        variants.append(closed)
    return list(dict.fromkeys(variants))


def _close_brackets(text: str) -> str:
    """Close the brackets (and a string) left open by an answer cut off mid-way."""
    stack: list[str] = []
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            stack.pop()
    tail = '"' if in_string else ""
    body = _TRAILING_COMMA.sub(r"\1", text.rstrip().rstrip(",") + tail)
    return body + "".join(reversed(stack))


def _shapes(data: Any, model: type[BaseModel]) -> list[Any]:
    """``data`` as parsed, plus the obvious fits: a bare list for a one-list model, an unwrapped object."""
    shapes = [data]
    fields = model.model_fields
    if isinstance(data, list) and len(fields) == 1:
        shapes.append({next(iter(fields)): data})
    if isinstance(data, dict) and len(data) == 1:
        (only,) = data.values()
        if isinstance(only, dict) and set(only) & set(fields):
            shapes.append(only)  # {"output": {...}} or {"ModelName": {...}}
    return shapes


def _validation_summary(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "(top level)"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "the JSON does not fit the schema: " + "; ".join(parts) + more
