"""Generation: the generator role, its message and result types.

Generators come with connectors and are found through the registry::

    from ragkit.registry import build
    generator = build("generator", {"type": "transformers"})   # packaged SmolLM2, offline
    print(generator.generate([Message("user", "Say hi")]).text)

``transformers`` (``ragkit-transformers``) runs a local model, the packaged
SmolLM2-135M-Instruct by default; ``openai`` (``ragkit-openai``) talks to any
OpenAI-compatible server (vLLM, TGI's Messages API, Ollama, llama.cpp's
server, OpenAI); ``tgi`` (``ragkit-tgi``) uses text-generation-inference's
native API.
"""

from __future__ import annotations

from ragkit.generation.base import (
    BaseGenerator,
    FinishReason,
    Generation,
    GenerationDelta,
    GenerationOptions,
    Generator,
    Message,
    Usage,
    iterate_in_thread,
    join_stream,
)

__all__ = [
    "BaseGenerator",
    "FinishReason",
    "Generation",
    "GenerationDelta",
    "GenerationOptions",
    "Generator",
    "Message",
    "Usage",
    "iterate_in_thread",
    "join_stream",
]
