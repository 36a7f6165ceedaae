"""Find the YAML recipes in ``pipelines/`` by name.

A recipe is a saved configuration: ``ragkit ingest --config milvus`` reads
``pipelines/milvus.yaml``. Names are looked up in ``$RAGKIT_PIPELINES``, then
in the ``pipelines/`` folder of a source checkout, then in
``<prefix>/share/ragkit/pipelines`` where a wheel installs them. Anything
with a ``/`` or a ``.yaml`` suffix is read as a file path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ragkit.config import CollectionConfig
from ragkit.errors import NotFoundError


def recipe_dirs() -> list[Path]:
    """The folders searched for recipes, in order."""
    dirs = []
    if env := os.environ.get("RAGKIT_PIPELINES"):
        dirs.append(Path(env))
    dirs.append(Path(__file__).resolve().parent.parent / "pipelines")
    dirs.append(Path(sys.prefix) / "share" / "ragkit" / "pipelines")
    return [d for d in dirs if d.is_dir()]


def available_recipes() -> list[str]:
    """Names of every recipe found."""
    return sorted({p.stem for d in recipe_dirs() for p in d.glob("*.yaml")})


def find_recipe(name_or_path: str) -> Path:
    """The file behind a recipe name (or the path itself)."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise NotFoundError(f"config file {name_or_path} does not exist")
        return path
    for folder in recipe_dirs():
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    known = ", ".join(available_recipes()) or "none found"
    raise NotFoundError(f"no recipe named {name_or_path!r} (known: {known})")


def load_collection_config(name_or_path: str) -> CollectionConfig:
    """The collection config of a recipe name or YAML file."""
    return CollectionConfig.from_yaml(find_recipe(name_or_path))
