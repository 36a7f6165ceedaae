"""ragkit connector for OpenAI-compatible servers (OpenAI, vLLM, TEI, llama.cpp, Ollama ...).

Registered as ``embedder.openai`` and ``generator.openai``. The ``openai`` package is imported on first use.
"""

from __future__ import annotations

from ragkit_openai.chat import OpenAIChatGenerator
from ragkit_openai.embedder import OpenAIEmbedder

__all__ = ["OpenAIChatGenerator", "OpenAIEmbedder"]
