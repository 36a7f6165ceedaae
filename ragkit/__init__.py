"""ragkit: retrieval-augmented generation with offline defaults.

The names below are imported lazily, so ``import ragkit`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ragkit.collection import Collection, IngestReport
    from ragkit.config import CollectionConfig, LoaderOptions, Settings
    from ragkit.errors import (
        ConfigError,
        ConflictError,
        FilterError,
        InputError,
        LoaderError,
        NotFoundError,
        RagkitError,
        StorageError,
        UnavailableError,
    )
    from ragkit.schema import Chunk, Document, Hit, SourceRecord

_EXPORTS = {
    "Collection": "ragkit.collection",
    "IngestReport": "ragkit.collection",
    "CollectionConfig": "ragkit.config",
    "LoaderOptions": "ragkit.config",
    "Settings": "ragkit.config",
    "Chunk": "ragkit.schema",
    "Document": "ragkit.schema",
    "Hit": "ragkit.schema",
    "SourceRecord": "ragkit.schema",
    "RagkitError": "ragkit.errors",
    "InputError": "ragkit.errors",
    "ConfigError": "ragkit.errors",
    "FilterError": "ragkit.errors",
    "LoaderError": "ragkit.errors",
    "NotFoundError": "ragkit.errors",
    "ConflictError": "ragkit.errors",
    "StorageError": "ragkit.errors",
    "UnavailableError": "ragkit.errors",
}

__all__ = [
    "Chunk",
    "Collection",
    "CollectionConfig",
    "ConfigError",
    "ConflictError",
    "Document",
    "FilterError",
    "Hit",
    "IngestReport",
    "InputError",
    "LoaderError",
    "LoaderOptions",
    "NotFoundError",
    "RagkitError",
    "Settings",
    "SourceRecord",
    "StorageError",
    "UnavailableError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
