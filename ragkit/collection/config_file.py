"""Reading and writing ``collection.yaml``: a collection's config and the embedding it was made with."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from ragkit import __version__
from ragkit.collection.layout import CollectionFolder
from ragkit.config import CollectionConfig
from ragkit.errors import ConfigError, ConflictError, StorageError, storage_error
from ragkit.yaml_io import read_mapping


@dataclass
class CollectionRecord:
    """What ``collection.yaml`` holds: the configuration and the embedder's dimension and fingerprint."""

    config: CollectionConfig
    embedding: dict[str, Any] = field(default_factory=dict)


def read_record(folder: CollectionFolder) -> CollectionRecord:
    """The record saved in ``folder`` (a :class:`StorageError` if it cannot be read)."""
    config_file = folder.config_file
    try:
        data = read_mapping(config_file, "collection record")
    except ConfigError as exc:  # unreadable or damaged: the store's fault, not the caller's input
        raise StorageError(str(exc)) from None
    config = CollectionConfig.parse(data.get("config", {}), where=str(config_file))
    return CollectionRecord(config, dict(data.get("embedding", {})))


def write_record(folder: CollectionFolder, record: CollectionRecord, name: str | None = None) -> None:
    """Save ``record`` atomically (a temporary file renamed over the old one).

    ``name``: the collection's name when the folder is not (yet) named after it (a reindex's new generation).
    """
    data = {
        "name": name or folder.name,
        "ragkit_version": __version__,
        "embedding": record.embedding,
        "config": record.config.model_dump(mode="json"),
    }
    target = folder.config_file
    tmp = target.with_suffix(".yaml.tmp")
    try:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # half written on a full disk
        raise storage_error(exc, f"cannot write {target}") from None


def check_same_config(name: str, stored: CollectionConfig, wanted: CollectionConfig) -> None:
    """A :class:`ConflictError` naming each setting where ``wanted`` differs from the ``stored`` config."""
    have = stored.model_dump(mode="json")
    given = wanted.model_dump(mode="json")
    differing = [key for key in have if have[key] != given.get(key)]
    if differing:
        details = "; ".join(f"{key}: stored {have[key]!r}, given {given.get(key)!r}" for key in differing)
        raise ConflictError(
            f"collection {name!r} was created with a different configuration ({details}); "
            "open it without a config, or create a new collection"
        )
