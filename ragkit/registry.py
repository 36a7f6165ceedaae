"""Find components by role and name, and build them from config.

Built-in components register themselves with :func:`register`. Connectors
(and third parties) announce theirs in the ``ragkit.components`` entry-point
group, named ``<role>.<type>``::

    [project.entry-points."ragkit.components"]
    "embedder.sentence-transformers" = "ragkit_sentence_transformers:SentenceTransformerEmbedder"

Entry points are only imported when their component is asked for, so
installing a connector costs nothing until it is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from ragkit.errors import ConfigError, NotFoundError

ENTRY_POINT_GROUP = "ragkit.components"

T = TypeVar("T", bound=type)

_registry: dict[tuple[str, str], type] = {}
# built-in modules whose import registers their components, by role
_BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "loader": ("ragkit.loaders",),
    "splitter": ("ragkit.splitters",),
    "store": ("ragkit.stores.faiss_store",),
    "lexical": ("ragkit.lexical",),
    "embedder": ("ragkit.embedders",),
    "metric": ("ragkit.evaluation.metrics",),
    "retriever": ("ragkit.query.retrievers",),
    "fuser": ("ragkit.query.fusion",),
    "reranker": (
        "ragkit.query.rerankers.threshold",
        "ragkit.query.rerankers.llm",
        "ragkit.query.rerankers.diversity",
        "ragkit.query.rerankers.embedding",
    ),
    "query_transform": ("ragkit.query.transforms", "ragkit.query.condense", "ragkit.query.self_query"),
    "context_shaper": ("ragkit.query.shapers",),
    "tool": ("ragkit.agents.tools", "ragkit.agents.builtin", "ragkit.agents.calculator"),
    "agent": ("ragkit.agents.agent",),
}


def register(role: str, name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as ``{"type": name}`` for ``role``."""

    def decorate(cls: T) -> T:
        cls.role = role  # type: ignore[attr-defined]
        cls.component_type = name  # type: ignore[attr-defined]
        _registry[(role, name)] = cls
        return cls

    return decorate


_scanned: tuple[tuple[str, ...], dict[tuple[str, str], EntryPoint]] | None = None


def _entry_points() -> dict[tuple[str, str], EntryPoint]:
    """The ``ragkit.components`` entry points by ``(role, name)``.

    Scanning the installed distributions costs about 10 ms, and every ingest
    asks (for the loaders' file types), so the scan is kept until ``sys.path``
    changes. A package installed into an existing path while the process runs
    is seen after :func:`refresh`.
    """
    global _scanned
    path = tuple(sys.path)
    if _scanned is None or _scanned[0] != path:
        found: dict[tuple[str, str], EntryPoint] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            role, _, name = ep.name.partition(".")
            if name:
                found[(role, name)] = ep
        _scanned = (path, found)
    return _scanned[1]


def refresh() -> None:
    """Forget the entry points found so far (after installing a connector into a running process)."""
    global _scanned
    _scanned = None


def _import_builtins(role: str) -> None:
    for module in _BUILTIN_MODULES.get(role, ()):
        importlib.import_module(module)


def get(role: str, name: str) -> type:
    """The component class registered as ``name`` for ``role``."""
    key = (role, name)
    if key not in _registry:
        _import_builtins(role)
    if key not in _registry:
        ep = _entry_points().get(key)
        if ep is not None:
            cls = ep.load()
            cls.role = role
            cls.component_type = name
            _registry[key] = cls
    if key not in _registry:
        known = ", ".join(sorted(available(role))) or "none"
        raise NotFoundError(f"no {role} named {name!r}; available: {known}")
    return _registry[key]


def available(role: str) -> list[str]:
    """Names of every component known for ``role``, built in or from entry points."""
    _import_builtins(role)
    names = {name for (r, name) in _registry if r == role}
    names |= {name for (r, name) in _entry_points() if r == role}
    return sorted(names)


def build(role: str, config: Mapping[str, Any] | str) -> Any:
    """Build a component from ``{"type": NAME, **options}`` (or just its name)."""
    if isinstance(config, str):
        config = {"type": config}
    if not isinstance(config, Mapping) or "type" not in config:
        raise ConfigError(f"{role} config needs a 'type' key, got {config!r}")
    cls: Any = get(role, str(config["type"]))
    return cls.from_config(config)
