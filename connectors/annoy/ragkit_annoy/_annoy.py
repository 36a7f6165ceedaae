"""The one place that imports ``annoy`` (lazily, so importing the connector stays cheap)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("angular", "dot")


def new_index(vectors: np.ndarray, metric: str, n_trees: int, seed: int, n_jobs: int) -> Any:
    """An Annoy index over the rows of ``vectors`` (item ``i`` is row ``i``), built with ``n_trees`` trees."""
    from annoy import AnnoyIndex

    index = AnnoyIndex(int(vectors.shape[1]), metric)  # type: ignore[arg-type]  # a checked metric name
    index.set_seed(seed)
    for i, vector in enumerate(vectors):
        index.add_item(i, vector.tolist())
    if len(vectors):
        index.build(n_trees, n_jobs)
    return index


def load_index(path: Path, dimension: int, metric: str) -> Any:
    """A saved Annoy index, memory-mapped (its pages are read as searches touch them)."""
    from annoy import AnnoyIndex

    index = AnnoyIndex(dimension, metric)  # type: ignore[arg-type]
    index.load(str(path), False)
    return index
