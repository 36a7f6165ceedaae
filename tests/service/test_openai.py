"""The OpenAI-compatible routes, driven by the real ``openai`` client."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.service.conftest import ADMIN_KEY, QUESTION, Service


@pytest.fixture(scope="module")
def client(service: Service) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120)


def test_models_list_every_collection_and_pipeline(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert "docs" in ids and "other" in ids, "the default pipeline's model id is the collection name"
    assert {"docs:fail", "docs:slow", "docs:broken", "docs:spy"} <= set(ids)
    assert ids.index("docs") < ids.index("docs:broken")
    model = client.models.retrieve("docs")
    assert model.owned_by == "ragkit" and model.object == "model"


def test_chat_completion_carries_citations(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="docs",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! Ask me about your documents."},
            {"role": "user", "content": QUESTION},
        ],
        max_tokens=10,
        temperature=0,
        extra_body={"unknown_field": 1},
    )
    assert response.object == "chat.completion" and response.model == "docs"
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert response.usage is not None and 0 < response.usage.completion_tokens <= 10
    citations = (response.model_extra or {})["citations"]
    assert citations and citations[0]["source"].endswith("super-bowl-50.pdf")
    assert {"number", "chunk_id", "start", "end", "quote"} <= set(citations[0])


def test_chat_completion_streams_chunks_with_citations_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="docs",
        messages=[{"role": "user", "content": QUESTION}],
        max_completion_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == "docs" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and text
    citations = (finals[0].model_extra or {})["citations"]
    assert citations and citations[0]["source"].endswith("super-bowl-50.pdf")
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert 0 < chunks[-1].usage.completion_tokens <= 10


def test_chat_errors_are_in_openais_shape(client: openai.OpenAI, service: Service) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.status_code == 404
    assert unknown.value.code == "model_not_found" and "'nope' does not exist" in unknown.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="docs:nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as no_question:
        client.chat.completions.create(model="docs", messages=[{"role": "system", "content": "be nice"}])
    assert "no user message" in no_question.value.message
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="docs", messages=[])
    anonymous = openai.OpenAI(base_url=f"{service.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        anonymous.models.list()
    assert denied.value.status_code == 401
    raw = httpx.post(
        f"{service.url}/v1/chat/completions", json={"model": "docs"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert raw.status_code == 422 and set(raw.json()["error"]) >= {"message", "type", "code"}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "tool_choice": "required"},
         "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
    ],
)  # fmt: skip
def test_parameters_the_models_cannot_honour_are_refused_in_openais_shape(
    client: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="docs", messages=[{"role": "user", "content": "hi"}], **extra)
    assert refused.value.status_code == 400 and refused.value.code == f"unsupported_{param}"
    assert param in refused.value.message and "not supported" in refused.value.message


def test_tools_with_tool_choice_auto_are_accepted_and_never_called(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    completion = client.chat.completions.create(
        model="docs", messages=[{"role": "user", "content": QUESTION}], tools=tools, tool_choice="auto", max_tokens=8
    )
    assert completion.choices[0].message.content and not completion.choices[0].message.tool_calls


def test_embeddings_use_the_collections_own_embedder(client: openai.OpenAI, service: Service) -> None:
    from ragkit.collection import Collection

    texts = ["Where was Super Bowl 50 played?", "The Black Death"]
    response = client.embeddings.create(model="docs", input=texts)  # the client asks for base64 and decodes it
    assert [d.index for d in response.data] == [0, 1] and response.model == "docs"
    assert response.usage.prompt_tokens > 0
    with Collection.open("docs", store_dir=service.home) as docs:
        expected = docs.embedder.embed_documents(texts)
    for got, want in zip(response.data, expected, strict=True):
        assert len(got.embedding) == 384
        assert np.allclose(got.embedding, want, atol=1e-4)
    as_floats = client.embeddings.create(model="docs", input="one text", encoding_format="float")
    assert len(as_floats.data) == 1 and len(as_floats.data[0].embedding) == 384
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError) as wrong_size:
        client.embeddings.create(model="docs", input="x", dimensions=64)
    assert "384" in wrong_size.value.message


def test_unknown_openai_routes_answer_in_openais_shape(service: Service) -> None:
    raw = httpx.post(
        f"{service.url}/v1/completions", json={"model": "docs", "prompt": "hi"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )  # fmt: skip
    assert raw.status_code == 404
    assert set(raw.json()["error"]) >= {"message", "type", "code"}, raw.text
