"""``connectors/openai``'s generator against a real OpenAI-compatible server: ragkit's own
``/v1/chat/completions``, served by uvicorn on loopback and backed by the local SmolLM2 model.

This is the configuration a user writes to chain two ragkit services, or to
point a pipeline at any OpenAI-compatible server (vLLM, Ollama, llama.cpp).
"""

from __future__ import annotations

import asyncio

import pytest

from ragkit.errors import ConfigError
from ragkit.generation import GenerationOptions, Message
from ragkit.registry import build
from tests.service.conftest import ADMIN_KEY, QUESTION, Service


@pytest.fixture(scope="module")
def remote(service: Service, monkeypatch_module: pytest.MonkeyPatch):
    monkeypatch_module.setenv("RAGKIT_TEST_REMOTE_KEY", ADMIN_KEY)
    generator = build(
        "generator",
        {
            "type": "openai",
            "model": "docs",
            "base_url": f"{service.url}/v1",
            "api_key_env": "RAGKIT_TEST_REMOTE_KEY",
            "timeout": 120,
            "max_retries": 0,
        },
    )
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


MESSAGES = [Message("user", QUESTION)]


def test_generate_gets_a_grounded_answer_through_the_real_server(remote):
    result = remote.generate(MESSAGES, GenerationOptions(max_tokens=12))
    assert result.text.strip()
    assert result.finish_reason in ("stop", "length")
    assert 0 < result.usage.completion_tokens <= 12
    assert result.usage.prompt_tokens > 0, "the server reports the real prompt size"


def test_stream_joins_to_the_same_answer_as_generate(remote):
    whole = remote.generate(MESSAGES, GenerationOptions(max_tokens=12, temperature=0))
    deltas = list(remote.stream(MESSAGES, GenerationOptions(max_tokens=12, temperature=0)))
    assert "".join(d.text for d in deltas) == whole.text
    assert deltas[-1].finish_reason in ("stop", "length")
    assert any(d.usage is not None and d.usage.completion_tokens > 0 for d in deltas)


def test_async_stream_works_against_the_real_server(remote):
    async def run():
        return [d async for d in remote.astream(MESSAGES, GenerationOptions(max_tokens=8))]

    deltas = asyncio.run(run())
    assert "".join(d.text for d in deltas).strip()


def test_an_unknown_model_is_a_clear_config_error(service: Service):
    generator = build(
        "generator",
        {
            "type": "openai",
            "model": "no-such-collection",
            "base_url": f"{service.url}/v1",
            "api_key": ADMIN_KEY,
            "max_retries": 0,
        },
    )
    with pytest.raises(ConfigError, match="no-such-collection"):
        generator.generate(MESSAGES, GenerationOptions(max_tokens=4))


def test_a_refused_key_is_a_clear_config_error(service: Service):
    generator = build(
        "generator",
        {"type": "openai", "model": "docs", "base_url": f"{service.url}/v1", "api_key": "wrong-key", "max_retries": 0},
    )
    with pytest.raises(ConfigError, match="(?i)key"):
        generator.generate(MESSAGES, GenerationOptions(max_tokens=4))
