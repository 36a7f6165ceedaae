"""Reading YAML files and validating what they hold, with errors that name the file, the line and the field.

:func:`read_mapping` reads a file whose top level is a mapping (settings,
collection and pipeline recipes, evaluation suites); :func:`validate` turns
plain data into a pydantic model or dataclass; :func:`load_yaml` does both.
Every mistake is one :class:`~ragkit.errors.ConfigError`: a file that cannot
be read (``cannot read suite s.yaml: No such file or directory``), YAML that
does not parse (``s.yaml is not valid YAML: mapping values are not allowed
here at line 3, column 7``, never quoting the file: it may not be YAML at
all), a top level that is not a mapping, or a field that does not validate
(``s.yaml: pipelines.0.name: Field required``).

Parsing uses libyaml's C parser when PyYAML was built with it
(``yaml.safe_load`` always takes the Python parser, about ten times slower;
config and recipe files are read on every collection open and suite run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from ragkit.errors import ConfigError

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

T = TypeVar("T")


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``, with the C parser when it is there (same results, same ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_LOADER)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where (``... at line 3, column 7``), on one line, without quoting the text."""
    problem = getattr(exc, "problem", None) or "cannot be parsed"
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


def format_validation_error(exc: ValidationError) -> str:
    """One readable line per pydantic error: ``field.path: message``."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level mapping of YAML file ``path`` (``{}`` when it is empty); ``what`` names it in errors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of {what} at the top level, not a {type(data).__name__}")
    return data


def validate(model: type[T], data: Any, where: str) -> T:
    """``data`` validated into ``model`` (a pydantic model or a dataclass); errors name ``where`` and the field."""
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc)}") from None


def load_yaml(path: str | Path, model: type[T], what: str, section: str | None = None) -> T:
    """Read YAML file ``path`` and validate it (or its ``section:`` mapping, when it has one) into ``model``."""
    data = read_mapping(path, what)
    if section is not None and isinstance(data.get(section), dict):
        data = data[section]
    return validate(model, data, str(path))
