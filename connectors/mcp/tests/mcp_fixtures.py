"""What the MCP tests share: a store folder with two small real collections (the sample documents, the
packaged embedder), service settings with a short-answer pipeline on the real local model, and the
environment a spawned ``ragkit mcp`` needs."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragkit.collection import Collection

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "evaluation" / "datasets" / "sample-docs"
RAGKIT = str(Path(sys.executable).with_name("ragkit"))

TINY_PIPELINE: dict[str, Any] = {
    "retrieval": {"top_k": 2, "min_score": None},
    "context": {"max_tokens": 256},
    "generator": {"type": "transformers"},
    "answer": {"max_tokens": 12, "temperature": 0.0},
}
"""Short answers from the real packaged SmolLM2-135M-Instruct, so an answer takes about a second."""


def _documents(folder: Path) -> dict[str, list[Path]]:
    """The files of each collection (the repository's sample documents, a PDF among them)."""
    chosen = {
        "sample": ["super-bowl-50.pdf", "packet-switching.md", "amazon-rainforest.md"],
        "other": ["black-death.txt"],
    }
    copies: dict[str, list[Path]] = {}
    for name, files in chosen.items():
        target = folder / name
        target.mkdir(parents=True)
        copies[name] = [Path(shutil.copy(SAMPLE / f, target / f)) for f in files]
    return copies


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``home`` (the store folder), ``docs`` (the ingested copies, an ingest root) and ``config`` (settings YAML)."""
    base = tmp_path_factory.mktemp("mcp")
    home, docs = base / "home", base / "docs"
    files = _documents(docs)
    for name, paths in files.items():
        collection = Collection.create(name, None, home)
        collection.ingest(paths)
        collection.close()
    config = base / "service.yaml"
    config.write_text(
        yaml.safe_dump({"pipelines": {"tiny": TINY_PIPELINE}, "default_pipeline": "tiny"}), encoding="utf-8"
    )
    return {"home": home, "docs": docs, "config": config, "files": files}


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a spawned ``ragkit mcp``: offline models, the store folder."""
    env = {
        "RAGKIT_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAGAS_DO_NOT_TRACK": "true",
    }
    for key in ("HF_HOME", "TMPDIR", "VIRTUAL_ENV"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env
