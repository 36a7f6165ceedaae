"""The ragkit REST service: a thin FastAPI layer over collections and RAG pipelines.

::

    from ragkit.service import ServiceSettings, create_app, serve

See :mod:`ragkit.service.app` for the routes and :mod:`ragkit.service.settings`
for the settings (API keys, limits, CORS, pipelines).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.service.app import build_pipelines, create_app, serve
    from ragkit.service.settings import ApiKey, ServiceSettings

__all__ = ["ApiKey", "ServiceSettings", "build_pipelines", "create_app", "serve"]

_EXPORTS = {
    "ApiKey": "ragkit.service.settings",
    "ServiceSettings": "ragkit.service.settings",
    "build_pipelines": "ragkit.service.app",
    "create_app": "ragkit.service.app",
    "serve": "ragkit.service.app",
}


def __getattr__(name: str) -> Any:
    """Import the public names lazily (FastAPI is only imported when the app is built)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit.service' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
