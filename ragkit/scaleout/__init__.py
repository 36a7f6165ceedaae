"""Scale-out ingestion: the incremental ingest with loading, splitting and embedding on a Ray cluster.

``ragkit ingest --engine ray [--address HOST:PORT]`` or, from Python,
:func:`ingest_with_ray` with :class:`RaySettings`. Ray is the optional
``ragkit[ray]`` extra; only :mod:`ragkit.scaleout.ray_engine` imports it,
and only when an ingest runs. See ``docs/ray.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.scaleout.ingest import RayIngestPipeline, ingest_with_ray
    from ragkit.scaleout.ray_engine import RaySettings

_LAZY = {
    "RayIngestPipeline": "ragkit.scaleout.ingest",
    "ingest_with_ray": "ragkit.scaleout.ingest",
    "RaySettings": "ragkit.scaleout.ray_engine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit.scaleout' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["RayIngestPipeline", "RaySettings", "ingest_with_ray"]
