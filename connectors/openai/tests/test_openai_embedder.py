"""The OpenAI-compatible embedder: the real ``openai`` client against the FAKE server on loopback.

The server is :class:`ragkit.testing.fake_openai.FakeOpenAIServer`, the one
fake every connector's tests share, serving ``POST /v1/embeddings`` with
vectors from the real packaged all-MiniLM-L6-v2 (standing in for TEI/vLLM)
in OpenAI's response format. Knobs make it fail the next N requests (429,
500 ...), fail every request, sleep before answering, demand an API key, or
scale its vectors; it records every request (inputs, batch sizes, headers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from ragkit_openai import OpenAIEmbedder

from ragkit.errors import ConfigError, InputError, UnavailableError, UpstreamError, UpstreamTimeoutError
from ragkit.protocols import Embedder, TokenCounter
from ragkit.registry import build
from ragkit.testing.embedder_conformance import EmbedderConformance, check_embedder
from ragkit.testing.fake_openai import FakeOpenAIServer, FakeState

pytest.importorskip("ragkit_sentence_transformers")

TEXTS = [f"Paragraph {i}: the river {i} flows through city number {i * 7}." for i in range(10)]


# -- the server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_model():
    """The packaged model, as the server runs it (fp32 on the CPU)."""
    return build("embedder", {"type": "sentence-transformers", "device": "cpu", "precision": "fp32"})


@pytest.fixture(scope="module")
def fake_server(local_model) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(embed=local_model.embed_documents) as server:
        yield server


@pytest.fixture(scope="module")
def server(fake_server: FakeOpenAIServer) -> tuple[str, FakeState]:
    return fake_server.v1, fake_server.state


@pytest.fixture
def srv(fake_server: FakeOpenAIServer) -> tuple[str, FakeState]:
    """The server with its knobs reset."""
    return fake_server.v1, fake_server.reset()


def make(url: str, **options: Any) -> OpenAIEmbedder:
    return OpenAIEmbedder(model=options.pop("model", "all-MiniLM-L6-v2"), base_url=url, **options)


# -- behaviour ---------------------------------------------------------------------------------


class TestConformance(EmbedderConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls, server):
        return make(server[0])


def test_is_an_embedder_and_token_counter(srv):
    embedder = make(srv[0])
    assert isinstance(embedder, Embedder)
    assert isinstance(embedder, TokenCounter)


def test_vectors_equal_the_local_models(srv, local_model):
    url, state = srv
    vectors = make(url).embed_documents(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (10, 384)
    cosines = np.sum(vectors * local_model.embed_documents(TEXTS), axis=1)
    assert cosines.min() > 0.999
    assert state.requests[0]["body"]["encoding_format"] == "float"
    assert state.requests[0]["body"]["model"] == "all-MiniLM-L6-v2"


def test_vectors_are_normalised_whatever_the_server_sends(srv):
    url, state = srv
    state.scale = 7.5
    vectors = make(url).embed_documents(TEXTS[:3])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batching_splits_requests_and_keeps_order(srv, local_model):
    url, state = srv
    vectors = make(url, batch_size=4).embed_documents(TEXTS)
    assert state.batch_sizes == [4, 4, 2]
    assert state.inputs == TEXTS
    expected = local_model.embed_documents(TEXTS)
    assert np.sum(vectors * expected, axis=1).min() > 0.999


def test_retries_succeed_after_transient_failures(srv, local_model):
    url, state = srv
    state.fail_next = [429, 500, 503]
    vectors = make(url, max_retries=3).embed_documents(TEXTS[:2])
    assert len(state.requests) == 4  # three failures, then the answer
    assert np.sum(vectors * local_model.embed_documents(TEXTS[:2]), axis=1).min() > 0.999


def test_a_persistent_500_gives_upstream_error(srv):
    """Issue 15: a server 5xx is 502 for every connector (the embedder said 503 before)."""
    url, state = srv
    state.fail_always = 500
    state.error_message = "model crashed"
    with pytest.raises(UpstreamError, match=r"answered 500 \(after 1 retries\): model crashed") as info:
        make(url, max_retries=1).embed_documents(["x"])
    assert not isinstance(info.value, UpstreamTimeoutError)
    assert info.value.http_status == 502
    assert url in str(info.value)
    assert len(state.requests) == 2


def test_a_persistent_429_gives_unavailable(srv):
    url, state = srv
    state.fail_always = 429
    with pytest.raises(UnavailableError, match="429"):
        make(url, max_retries=0).embed_documents(["x"])
    assert len(state.requests) == 1


@pytest.mark.timeout(120)  # bounds a hang; no assertion on seconds
def test_a_timeout_gives_upstream_timeout(srv):
    """Issue 15: a timeout is 504 for every connector (the embedder said 503 before).

    The client gives up at its own timeout instead of waiting for the slow
    server: the error comes while the server is still working on the one
    request (were the timeout ignored, the answer would come, and no error).
    """
    url, state = srv
    state.delay = 30.0
    with pytest.raises(UpstreamTimeoutError, match=r"did not answer within 0.3 s") as info:
        make(url, timeout=0.3, max_retries=0).embed_documents(["x"])
    assert state.in_flight == 1, "the client waited for the slow server's answer"
    assert len(state.requests) == 1
    assert url in str(info.value)
    assert info.value.http_status == 504


def test_a_401_gives_config_error_naming_the_variable(srv, monkeypatch):
    url, state = srv
    state.api_key = "right-key"
    monkeypatch.setenv("EMBED_KEY", "wrong-key")
    with pytest.raises(ConfigError, match=r"refused the API key \(401\): check the EMBED_KEY environment variable"):
        make(url, api_key_env="EMBED_KEY").embed_documents(["x"])
    assert len(state.requests) == 1  # not retried
    monkeypatch.setenv("EMBED_KEY", "right-key")
    assert make(url, api_key_env="EMBED_KEY").embed_documents(["x"]).shape == (1, 384)
    assert state.requests[-1]["headers"]["authorization"] == "Bearer right-key"


def test_a_403_gives_config_error(srv):
    url, state = srv
    state.fail_always = 403
    with pytest.raises(ConfigError, match=r"\(403\)"):
        make(url, api_key="k").embed_documents(["x"])


def test_other_4xx_give_input_error_with_the_servers_message(srv):
    url, _ = srv
    with pytest.raises(InputError, match=r"rejected the request \(400\): '\$.input' is invalid") as info:
        make(url).embed_documents(["fine", ""])
    assert not isinstance(info.value, ConfigError)


def test_no_server_gives_unavailable_naming_the_url():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(UnavailableError, match=f"cannot reach embedding server {url}"):
        make(url, max_retries=0).embed_documents(["x"])


def test_dimension_learned_from_the_first_response(srv):
    url, state = srv
    embedder = make(url)
    embedder.embed_documents(["a", "b"])
    assert embedder.dimension == 384
    assert len(state.requests) == 1  # no extra request for the dimension
    assert embedder.to_config()["dimension"] is None


def test_dimension_asked_before_any_embedding_probes_once(srv):
    url, state = srv
    embedder = make(url)
    assert embedder.dimension == 384
    assert embedder.dimension == 384
    assert len(state.requests) == 1
    assert embedder.embed_documents([]).shape == (0, 384)
    assert len(state.requests) == 1


def test_configured_dimension_that_the_server_contradicts(srv):
    with pytest.raises(ConfigError, match=r"'dimension' is 512 but .* returned 384-long vectors"):
        make(srv[0], dimension=512).embed_documents(["x"])


def test_requested_dimensions(srv):
    url, state = srv
    embedder = make(url, dimension=128, request_dimensions=True)
    vectors = embedder.embed_documents(TEXTS[:3])
    assert vectors.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert state.requests[0]["body"]["dimensions"] == 128
    plain = make(url, dimension=384)
    plain.embed_documents(["x"])
    assert "dimensions" not in state.requests[-1]["body"]
    assert embedder.fingerprint != plain.fingerprint


def test_prefixes_for_an_e5_model_reach_the_server(srv):
    url, state = srv
    embedder = make(url, model="intfloat/e5-small-v2")
    embedder.embed_queries(["who?"])
    embedder.embed_documents(["a passage"])
    assert state.inputs == ["query: who?", "passage: a passage"]
    explicit = make(url, model="intfloat/e5-small-v2", query_prefix="", document_prefix="doc: ")
    explicit.embed_queries(["who?"])
    explicit.embed_documents(["a passage"])
    assert state.inputs[2:] == ["who?", "doc: a passage"]


def test_async_twins(srv, local_model):
    url, state = srv
    embedder = make(url, batch_size=3)

    async def main():
        return await embedder.aembed_documents(TEXTS[:7]), await embedder.aembed_queries(["q"])

    docs, _ = asyncio.run(main())
    assert state.batch_sizes == [3, 3, 1, 1]
    assert np.sum(docs * local_model.embed_documents(TEXTS[:7]), axis=1).min() > 0.999
    # a second event loop gets its own client
    again, _ = asyncio.run(main())
    np.testing.assert_allclose(again, docs, atol=1e-6)


def test_async_errors_are_wrapped(srv):
    url, state = srv
    state.fail_always = 500

    async def main():
        return await make(url, max_retries=0).aembed_documents(["x"])

    with pytest.raises(UpstreamError, match="500"):  # issue 15: 502 as for the chat generator, not 503
        asyncio.run(main())


def test_async_empty_input_learns_the_dimension_without_blocking(srv):
    async def main():
        return await make(srv[0]).aembed_queries([])

    assert asyncio.run(main()).shape == (0, 384)


def test_injected_http_clients_are_used_and_not_saved(srv):
    url, _ = srv
    seen: list[str] = []
    client = httpx.Client(event_hooks={"request": [lambda request: seen.append(str(request.url))]})
    async_seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        async_seen.append(str(request.url))

    embedder = make(url, http_client=client)
    embedder.embed_documents(["x"])
    assert seen == [f"{url}/embeddings"]
    assert "http_client" not in embedder.to_config()

    async def main():
        async with httpx.AsyncClient(event_hooks={"request": [hook]}) as async_client:
            other = make(url, async_http_client=async_client)
            await other.aembed_documents(["y"])
            return other.to_config()

    config = asyncio.run(main())
    assert async_seen == [f"{url}/embeddings"]
    assert "async_http_client" not in config
    client.close()


# -- tokens -------------------------------------------------------------------------------------


def test_count_tokens_estimate_for_models_tiktoken_does_not_know(srv):
    embedder = make(srv[0], model="BAAI/bge-small-en-v1.5", document_prefix="")
    assert embedder.count_tokens(["abcd" * 10, "", "abc"]) == [11, 1, 1]
    assert embedder.max_tokens == 8191
    assert make(srv[0], max_tokens=512).max_tokens == 512


def test_count_tokens_for_an_openai_model(srv):
    embedder = make(srv[0], model="text-embedding-3-small")
    counts = embedder.count_tokens(["hello world", "a longer sentence with several more words in it"])
    assert all(isinstance(c, int) and c > 0 for c in counts)
    assert counts[1] > counts[0]


# -- config ----------------------------------------------------------------------------------------


def test_config_round_trip_without_the_environment_key(srv, monkeypatch):
    url, state = srv
    monkeypatch.setenv("MY_EMBED_KEY", "sk-secret-from-env")
    embedder = build("embedder", {"type": "openai", "model": "m", "base_url": url, "api_key_env": "MY_EMBED_KEY"})
    config = embedder.to_config()
    assert "sk-secret-from-env" not in json.dumps(config)
    assert config["api_key"] is None
    assert config["api_key_env"] == "MY_EMBED_KEY"
    again = build("embedder", config)
    assert again.to_config() == config
    assert again.fingerprint == embedder.fingerprint
    again.embed_documents(["x"])
    assert state.requests[-1]["headers"]["authorization"] == "Bearer sk-secret-from-env"


def test_fingerprint_names_the_model_not_the_server(srv):
    a = OpenAIEmbedder(model="m", base_url="http://one:8080/v1")
    b = OpenAIEmbedder(model="m", base_url="http://two:9090/v1", batch_size=3, timeout=5)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint.startswith("openai:m:")
    assert OpenAIEmbedder(model="other", base_url="http://one:8080/v1").fingerprint != a.fingerprint
    assert OpenAIEmbedder(model="m", base_url="http://one:8080/v1", query_prefix="q: ").fingerprint != a.fingerprint


def test_openai_itself_needs_a_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"no API key .* OPENAI_API_KEY"):
        OpenAIEmbedder(model="text-embedding-3-small")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert OpenAIEmbedder(model="text-embedding-3-small").where == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"model": ""}, "model"),
        ({"base_url": "localhost:8080"}, "base_url"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_retries": -1}, "max_retries"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "30"}, "timeout"),
        ({"dimension": 0}, "dimension"),
        ({"request_dimensions": True}, "needs 'dimension'"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"query_prefix": 1}, "query_prefix"),
        ({"bogus": 1}, "unknown option"),
    ],
)
def test_config_errors_at_build(options, match):
    config = {"type": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", **options}
    with pytest.raises(ConfigError, match=match):
        build("embedder", config)


def test_input_errors(srv):
    embedder = make(srv[0])
    with pytest.raises(InputError, match="single string"):
        embedder.embed_documents("text")
    with pytest.raises(InputError, match="text 0"):
        embedder.embed_queries([3])


def test_conformance_function(srv):
    check_embedder(make(srv[0], batch_size=2))
