"""The GPU server recipes (pipelines/vllm.yaml, pipelines/tgi.yaml) against a real HTTP server on loopback.

vLLM and TGI need a GPU, so the server here is the shared FAKE OpenAI-compatible
server (:mod:`ragkit.testing.fake_openai`): what is checked is the recipe's
side, that it parses, takes the server's URL from ``OPENAI_BASE_URL`` and asks
for the served model name over the chat-completions API.
"""

from __future__ import annotations

import pytest

from ragkit import registry
from ragkit.generation.base import Message
from ragkit.rag.pipeline import RagPipeline
from ragkit.recipes import available_recipes
from ragkit.testing.fake_openai import FakeOpenAIServer


@pytest.mark.parametrize(("recipe", "model", "window"), [("vllm", "llm", 32768), ("tgi", "tgi", 8192)])
def test_the_recipe_answers_through_the_server_named_by_the_environment(recipe, model, window, monkeypatch):
    assert recipe in available_recipes()
    pipeline = RagPipeline.load(recipe)
    assert pipeline.config.generator["type"] == "openai" and "base_url" not in pipeline.config.generator
    with FakeOpenAIServer(model=model) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.v1)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        generator = registry.build("generator", pipeline.config.generator)
        answer = generator.generate([Message("user", "Where does the river flow?")])
        assert "Where does the river flow?" in answer.text
        (request,) = fake.state.on("/v1/chat/completions")
        assert request["body"]["model"] == model
    assert generator.context_window == window  # the window deploy/compose.yaml starts the server with
