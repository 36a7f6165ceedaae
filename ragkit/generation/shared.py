"""One generator per distinct config per process, shared by every part that asks for it.

The RAG pipeline, the LLM query stages and the chunk-context writer all
build their generator here, so a local model configured the same way in
several places is loaded once. This module imports only the registry, so
any part of the core may use it without importing the pipeline.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ragkit import registry
from ragkit.generation.base import Generator

_generators: dict[str, Generator] = {}
_generators_lock = threading.Lock()


def shared_generator(config: dict[str, Any]) -> Generator:
    """The generator built from ``config``, one per distinct config per process."""
    key = json.dumps(config, sort_keys=True, default=str)
    with _generators_lock:
        generator = _generators.get(key)
        if generator is None:
            generator = _generators[key] = registry.build("generator", config)
        return generator
