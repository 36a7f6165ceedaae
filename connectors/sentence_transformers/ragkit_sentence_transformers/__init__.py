"""ragkit connector for sentence-transformers models (the default embedder).

Registered as ``embedder.sentence-transformers``. Importing this package does
not import torch; the model loads on first use.
"""

from __future__ import annotations

from ragkit_sentence_transformers.embedder import PACKAGED_MODEL_NAME, SentenceTransformerEmbedder
from ragkit_sentence_transformers.selection import (
    choose_device,
    choose_precision,
    cpu_supports_bf16,
    default_prefixes,
)

__all__ = [
    "PACKAGED_MODEL_NAME",
    "SentenceTransformerEmbedder",
    "choose_device",
    "choose_precision",
    "cpu_supports_bf16",
    "default_prefixes",
]
