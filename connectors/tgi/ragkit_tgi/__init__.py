"""ragkit connector for text-generation-inference (TGI)'s native API.

Registered as ``generator.tgi``. For TGI's OpenAI-compatible Messages API
(``/v1/chat/completions``, with tool calling) use ``generator.openai`` from
``ragkit-openai`` instead.
"""

from __future__ import annotations

from ragkit_tgi.generator import CHATML_TEMPLATE, TGIGenerator

__all__ = ["CHATML_TEMPLATE", "TGIGenerator"]
