"""Building a LangChain object named by its import path, and the config of one given as an object."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ragkit.errors import ConfigError


def import_class(path: str, role: str) -> type:
    """The class at ``path`` (``package.module.Class`` or ``package.module:Class``); :class:`ConfigError` if none."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{role} 'langchain': expected an import path like 'package.module.Class', got {path!r}")
    module_name, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not name:
        raise ConfigError(f"{role} 'langchain': {path!r} is not an import path like 'package.module.Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{role} 'langchain': cannot import {module_name!r} for {path!r}: {exc}") from None
    found = getattr(module, name, None)
    if not isinstance(found, type):
        raise ConfigError(f"{role} 'langchain': {module_name!r} has no class {name!r}")
    return found


def instantiate(path: str, kwargs: Mapping[str, Any] | None, role: str) -> Any:
    """An instance of the class at ``path`` built with ``kwargs``; a failure is a :class:`ConfigError`."""
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ConfigError(f"{role} 'langchain': kwargs must be a mapping, got {type(kwargs).__name__}")
    cls = import_class(path, role)
    try:
        return cls(**dict(kwargs or {}))
    except Exception as exc:  # a LangChain class validating its arguments (pydantic, TypeError ...)
        raise ConfigError(f"{role} 'langchain': {path} could not be built: {exc}") from None


def class_path(obj: object) -> str:
    """``module.Class`` of ``obj``'s class."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def rebuild_kwargs(obj: object) -> dict[str, Any]:
    """The constructor arguments that rebuild a pydantic LangChain object: the fields it was given, secrets left out.

    A secret (an API key) is left to the class to read from the environment
    again, so it is never written into a saved config. A non-pydantic
    object gives ``{}``.
    """
    fields_set = getattr(obj, "model_fields_set", None)
    if fields_set is None:
        return {}
    from pydantic import SecretBytes, SecretStr

    kwargs: dict[str, Any] = {}
    for name in sorted(fields_set):
        value = getattr(obj, name, None)
        if isinstance(value, SecretStr | SecretBytes):
            continue
        if isinstance(value, str | int | float | bool) or value is None or isinstance(value, list | dict | tuple):
            kwargs[name] = value
    return kwargs
