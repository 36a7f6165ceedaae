"""The TGI generator: ``huggingface_hub.InferenceClient`` against the FAKE server on loopback.

The server is :class:`ragkit.testing.fake_openai.FakeOpenAIServer`, the one
fake every connector's tests share; like a real TGI it also speaks TGI's
native API, as a wire-protocol double with no model behind it: ``POST
/generate`` (``{"generated_text", "details"}``), ``POST /generate_stream``
(SSE ``data:{"token": ..., "generated_text": null, "details": null}``
events in chunked encoding, the last one with ``generated_text`` and
``details``), ``POST /tokenize`` and ``GET /info``, and errors in TGI's
shape (``{"error": ..., "error_type": ...}``). It "generates" a scripted
answer token by token (:func:`~ragkit.testing.fake_openai.fake_tokens`),
honours ``max_new_tokens`` and ``stop`` the way TGI does (the stop sequence
stays in the text), ends with a special end-of-sequence token, records
every request, and notices when a client hangs up mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ragkit_tgi import CHATML_TEMPLATE, TGIGenerator

from ragkit.errors import ConfigError, InputError, UnavailableError, UpstreamError, UpstreamTimeoutError
from ragkit.generation.base import GenerationOptions, Generator, Message
from ragkit.registry import build
from ragkit.testing.fake_openai import FakeOpenAIServer, FakeState, fake_tokens
from ragkit.testing.generator_conformance import GeneratorConformance

QUESTION = [Message("system", "You answer briefly."), Message("user", "What flows through the city?")]
ANSWER = "The river flows through the city."
CHATML_PROMPT = (
    "<|im_start|>system\nYou answer briefly.<|im_end|>\n"
    "<|im_start|>user\nWhat flows through the city?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


# -- the fake server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply=ANSWER) as server:
        yield server


@pytest.fixture
def srv(fake_server: FakeOpenAIServer) -> tuple[str, FakeState]:
    """The fake server with its knobs reset."""
    return fake_server.url, fake_server.reset()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry loop's waits, recorded instead of slept (so tests check them without a clock)."""
    import ragkit_tgi.generator

    waits: list[float] = []
    monkeypatch.setattr(ragkit_tgi.generator, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


def make(url: str, **options: Any) -> TGIGenerator:
    options.setdefault("max_retries", 0)
    options.setdefault("backoff", 0.01)
    return TGIGenerator(base_url=url, **options)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the generator conformance suite ---------------------------------------------------------------


class TestConformance(GeneratorConformance):
    @pytest.fixture
    def generator(self, fake_server: FakeOpenAIServer):
        fake_server.reset()
        return make(fake_server.url)


# -- answers ----------------------------------------------------------------------------------


def test_is_a_generator():
    generator = make("http://127.0.0.1:9", model_name="qwen", context_window=2048)
    assert isinstance(generator, Generator)
    assert generator.model_name == "qwen"
    assert generator.context_window == 2048
    assert generator.chat_template == CHATML_TEMPLATE


def test_generate_posts_the_rendered_prompt_to_generate(srv):
    url, state = srv
    generation = make(url).generate(QUESTION)
    assert generation.text == ANSWER
    assert generation.finish_reason == "stop"  # eos_token
    assert generation.model == "tgi"
    assert generation.usage.completion_tokens == len(fake_tokens(ANSWER)) + 1  # the end token counts
    # prompt tokens: the server's /tokenize count (the fake adds a <s>)
    assert generation.usage.prompt_tokens == len(fake_tokens(CHATML_PROMPT)) + 1
    request = state.on("/generate")[0]
    assert request["body"]["inputs"] == CHATML_PROMPT
    params = request["body"]["parameters"]
    assert params["details"] is True
    assert params["max_new_tokens"] == 512
    assert params["do_sample"] is False
    assert "temperature" not in params  # TGI refuses 0: greedy instead
    assert "authorization" not in request["headers"]


def test_stream_yields_tokens_then_finish_and_usage(srv):
    url, state = srv
    deltas = list(make(url).stream(QUESTION))
    texts = [d.text for d in deltas if d.text]
    assert texts == fake_tokens(ANSWER)  # the special end token is skipped
    assert all(d.finish_reason is None for d in deltas[:-1])
    last = deltas[-1]
    assert last.finish_reason == "stop"
    assert last.usage is not None
    assert last.usage.completion_tokens == len(fake_tokens(ANSWER)) + 1
    assert last.usage.prompt_tokens == len(fake_tokens(CHATML_PROMPT)) + 1  # details.input_length
    assert state.on("/tokenize") == []  # the stream's details carried the prompt length
    assert state.on("/generate_stream")[0]["body"]["inputs"] == CHATML_PROMPT
    assert state.finished.wait(2)


def test_stream_text_equals_generate_text(srv):
    url, _ = srv
    generator = make(url)
    for options in (None, GenerationOptions(max_tokens=3), GenerationOptions(stop=[" the"])):
        streamed = "".join(d.text for d in generator.stream(QUESTION, options))
        assert streamed == generator.generate(QUESTION, options).text


def test_length_finish_reason(srv):
    url, state = srv
    generator = make(url, max_new_tokens=3)
    generation = generator.generate(QUESTION)
    assert (generation.text, generation.finish_reason) == ("The river flows", "length")
    deltas = list(generator.stream(QUESTION))
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens == 3
    assert state.on("/generate")[0]["body"]["parameters"]["max_new_tokens"] == 3


def test_stop_sequences_are_sent_and_cut_from_the_answer(srv):
    url, state = srv
    generator = make(url)
    options = GenerationOptions(stop=[" through", "zzz"])
    generation = generator.generate(QUESTION, options)
    assert generation.text == "The river flows"  # TGI keeps the stop sequence; ragkit cuts it
    assert generation.finish_reason == "stop"
    assert state.on("/generate")[0]["body"]["parameters"]["stop"] == [" through", "zzz"]
    deltas = list(generator.stream(QUESTION, options))
    assert "".join(d.text for d in deltas) == "The river flows"
    assert " through" not in [d.text for d in deltas]
    assert deltas[-1].finish_reason == "stop"
    assert state.on("/generate_stream")[0]["body"]["parameters"]["stop"] == [" through", "zzz"]


def test_a_held_back_stop_prefix_is_released_when_it_does_not_complete(srv):
    url, state = srv
    state.reply = "one two three"
    deltas = list(make(url).stream(QUESTION, GenerationOptions(stop=[" twofold"])))
    assert "".join(d.text for d in deltas) == "one two three"


def test_sampling_options_are_passed(srv):
    url, state = srv
    options = GenerationOptions(max_tokens=9, temperature=0.7, top_p=0.9, seed=42)
    make(url).generate(QUESTION, options)
    params = state.on("/generate")[0]["body"]["parameters"]
    assert params["max_new_tokens"] == 9
    assert params["do_sample"] is True
    assert params["temperature"] == 0.7
    assert params["top_p"] == 0.9
    assert params["seed"] == 42
    make(url, temperature=0.5).generate(QUESTION, GenerationOptions(top_p=1.0))
    params = state.on("/generate")[1]["body"]["parameters"]
    assert params["temperature"] == 0.5
    assert "top_p" not in params  # TGI refuses 1.0


def test_tools_are_refused():
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    with pytest.raises(InputError, match="no tool calling"):
        make("http://127.0.0.1:9").generate(QUESTION, GenerationOptions(tools=[tool]))


def test_no_messages_is_an_input_error(srv):
    url, state = srv
    with pytest.raises(InputError, match="no messages"):
        make(url).generate([])
    assert state.requests == []


# -- chat templates -----------------------------------------------------------------------------


def test_a_custom_chat_template(srv):
    url, state = srv
    template = (
        "{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}[ASSISTANT]{% endif %}"
    )
    generator = make(url, chat_template=template)
    generator.generate(QUESTION)
    assert state.prompts[0] == "[SYSTEM] You answer briefly.\n[USER] What flows through the city?\n[ASSISTANT]"


def test_a_template_can_refuse_messages():
    template = "{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}x"
    with pytest.raises(InputError, match="user first"):
        make("http://127.0.0.1:9", chat_template=template).render_prompt(QUESTION)


def test_a_broken_template_fails_when_built():
    with pytest.raises(ConfigError, match="chat_template"):
        make("http://127.0.0.1:9", chat_template="{% for m in messages %}")


def test_the_tokenizer_folder_gives_template_and_exact_counts(srv, tmp_path: Path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2}
    words = "[INST] [/INST] You answer briefly . What flows through the city ?"
    for word in words.split(" "):
        vocab.setdefault(word, len(vocab))
    tokenizer = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    template = (
        "{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]"
        "{% elif m.role == 'assistant' %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}"
    )
    config = {"chat_template": template, "eos_token": {"content": "</s>"}, "bos_token": "<s>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    url, state = srv
    generator = make(url, tokenizer=str(tmp_path))
    messages = [Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "What flows?")]
    assert generator.render_prompt(messages) == "[INST] Hi [/INST]Hello</s>[INST] What flows? [/INST]"
    assert generator.count_tokens("What flows through the city ?") == 6
    assert generator.count_message_tokens([Message("user", "What flows ?")]) == 5
    generator.generate([Message("user", "What flows ?")])
    assert state.prompts == ["[INST] What flows ? [/INST]"]
    assert state.on("/tokenize") == []  # counted locally


def test_a_missing_tokenizer_fails_when_built(tmp_path: Path):
    with pytest.raises(ConfigError, match="no tokenizer.json"):
        make("http://127.0.0.1:9", tokenizer=str(tmp_path))


# -- token counts ----------------------------------------------------------------------------


def test_counts_come_from_the_tokenize_route_and_are_cached(srv):
    url, state = srv
    generator = make(url)
    assert generator.count_tokens("The river flows.") == 5  # 4 pieces and the server's <s>
    assert generator.count_tokens("The river flows.") == 5
    assert len(state.on("/tokenize")) == 1
    assert generator.count_message_tokens(QUESTION) == len(fake_tokens(CHATML_PROMPT)) + 1


def test_counts_are_estimates_without_a_tokenize_route(srv):
    url, state = srv
    state.tokenize_route = False
    generator = make(url)
    assert generator.count_tokens("x" * 40) == 11
    assert generator.count_tokens("y" * 40) == 11
    assert len(state.on("/tokenize")) == 1  # asked once, then never again
    generation = generator.generate(QUESTION)
    assert generation.usage.prompt_tokens == len(CHATML_PROMPT) // 4 + 1


def test_counts_are_estimates_when_the_server_is_down():
    assert make(closed_port_url()).count_tokens("x" * 40) == 11


# -- cancellation ---------------------------------------------------------------------------


def test_closing_the_stream_closes_the_connection(srv):
    url, state = srv
    state.reply = " ".join(f"w{i}" for i in range(300))
    state.chunk_delay = 0.01
    iterator = make(url).stream(QUESTION)
    assert next(iterator).text == "w0"
    assert next(iterator).text == " w1"
    iterator.close()
    assert state.disconnected.wait(5), "the server never saw the client hang up"
    assert state.events_sent < state.events_planned
    assert not state.finished.is_set()


def test_cancelling_astream_closes_the_connection(srv):
    url, state = srv
    state.reply = " ".join(f"w{i}" for i in range(300))
    state.chunk_delay = 0.01

    async def main() -> list[str]:
        seen: list[str] = []
        two = asyncio.Event()

        async def consume() -> None:
            async for delta in make(url).astream(QUESTION):
                seen.append(delta.text)
                if len(seen) == 2:
                    two.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(two.wait(), 5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return seen

    seen = asyncio.run(main())
    assert seen[:2] == ["w0", " w1"]
    assert state.disconnected.wait(5)


def test_agenerate_and_astream(srv):
    url, _ = srv

    async def main() -> tuple[Any, list[Any]]:
        generator = make(url)
        return await generator.agenerate(QUESTION), [d async for d in generator.astream(QUESTION)]

    generation, deltas = asyncio.run(main())
    assert generation.text == ANSWER
    assert "".join(d.text for d in deltas) == ANSWER
    assert deltas[-1].finish_reason == "stop"


# -- errors and retries ---------------------------------------------------------------------


def test_429_503_and_500_are_retried(srv):
    url, state = srv
    state.fail_next = [429, 503, 500]
    state.retry_after = "0"
    generation = make(url, max_retries=3).generate(QUESTION)
    assert generation.text == ANSWER
    assert len(state.on("/generate")) == 4


def test_a_stream_is_retried_before_its_first_token(srv):
    url, state = srv
    state.fail_next = [503, 429]
    deltas = list(make(url, max_retries=2).stream(QUESTION))
    assert "".join(d.text for d in deltas) == ANSWER
    assert len(state.on("/generate_stream")) == 3


def test_backoff_grows_and_retry_after_is_honoured(srv, sleeps):
    """Backoff doubles per retry (less up to a quarter of jitter); ``Retry-After`` overrides it.

    The retry loop's sleeps are recorded, not timed.
    """
    url, state = srv
    state.fail_next = [503, 503]
    assert make(url, max_retries=2, backoff=0.1).generate(QUESTION).text == ANSWER
    assert len(sleeps) == 2
    assert 0.075 <= sleeps[0] <= 0.1 and 0.15 <= sleeps[1] <= 0.2
    sleeps.clear()
    state.fail_next = [429]
    state.retry_after = "1"
    assert make(url, max_retries=1, backoff=0.0).generate(QUESTION).text == ANSWER
    assert sleeps == [1.0]
    assert len(state.on("/generate")) == 5


def test_a_persistent_500_gives_upstream_error_with_status_and_message(srv):
    url, state = srv
    state.fail_always = 500
    state.error_message = "Request failed during generation: CUDA OOM"
    expected = r"answered 500 \(after 2 retries\): Request failed during generation"
    with pytest.raises(UpstreamError, match=expected) as info:
        make(url, max_retries=2).generate(QUESTION)
    assert not isinstance(info.value, UpstreamTimeoutError)
    assert info.value.http_status == 502
    assert url in str(info.value)
    assert len(state.on("/generate")) == 3


def test_a_persistent_overload_gives_unavailable(srv):
    url, state = srv
    state.fail_always = 429
    state.error_message = "Model is overloaded"
    with pytest.raises(UnavailableError, match=r"overloaded \(429\) \(after 1 retries\): Model is overloaded"):
        make(url, max_retries=1).generate(QUESTION)
    with pytest.raises(UnavailableError, match="429"):
        list(make(url).stream(QUESTION))


def test_a_generation_failure_424_is_upstream_and_not_retried(srv):
    url, state = srv
    state.fail_next = [424]
    state.error_message = "Request failed during generation"
    with pytest.raises(UpstreamError, match="answered 424"):
        make(url, max_retries=3).generate(QUESTION)
    assert len(state.on("/generate")) == 1


def test_a_validation_error_is_an_input_error(srv):
    url, state = srv
    state.fail_next = [422, 422]
    state.error_message = "`inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens"
    with pytest.raises(InputError, match=r"rejected the request \(422\): `inputs` tokens \+ `max_new_tokens`") as info:
        make(url, max_retries=3).generate(QUESTION)
    assert info.value.http_status == 400
    with pytest.raises(InputError, match="422"):
        list(make(url, max_retries=3).stream(QUESTION))
    assert len(state.requests) == 2  # not retried


def test_a_refused_key_is_a_config_error(srv, monkeypatch):
    url, state = srv
    state.api_key = "right-key"
    monkeypatch.setenv("TGI_KEY", "wrong-key")
    with pytest.raises(ConfigError, match=r"refused the API key \(401\): check the TGI_KEY environment variable"):
        make(url, api_key_env="TGI_KEY", max_retries=2).generate(QUESTION)
    assert len(state.on("/generate")) == 1
    monkeypatch.setenv("TGI_KEY", "right-key")
    assert make(url, api_key_env="TGI_KEY").generate(QUESTION).text == ANSWER
    assert state.on("/generate")[-1]["headers"]["authorization"] == "Bearer right-key"


def test_the_hugging_face_token_is_not_sent_to_the_server(srv, monkeypatch):
    url, state = srv
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    make(url).generate(QUESTION)
    list(make(url).stream(QUESTION))
    assert all("authorization" not in r["headers"] for r in state.requests if r["path"] != "/tokenize")


def test_a_wrong_base_url_is_a_config_error(srv):
    url, _ = srv
    with pytest.raises(ConfigError, match="404"):
        make(url + "/not-tgi").generate(QUESTION)


@pytest.mark.timeout(120)  # bounds a hang; no assertion on seconds
def test_a_timeout_gives_upstream_timeout_naming_url_and_seconds(srv):
    """The client gives up at its timeout, without waiting for the slow server, and does not retry a timeout.

    The error comes while the server is still working on the one request
    (were the timeout ignored, the answer would come, and no error), though
    two retries were allowed.
    """
    url, state = srv
    state.delay = 30.0
    with pytest.raises(UpstreamTimeoutError, match=r"did not answer within 0.3 s") as info:
        make(url, timeout=0.3, max_retries=2).generate(QUESTION)
    assert state.in_flight == 1, "the client waited for the slow server's answer"
    assert len(state.on("/generate")) == 1  # timeouts are not retried
    assert url in str(info.value)
    assert info.value.http_status == 504
    with pytest.raises(UpstreamTimeoutError):
        list(make(url, timeout=0.3).stream(QUESTION))


def test_a_stalled_stream_gives_upstream_timeout(srv):
    url, state = srv
    state.stall_after = 3
    state.stall_seconds = 1.5
    with pytest.raises(UpstreamTimeoutError, match="stopped sending within 0.3 s"):
        list(make(url, timeout=0.3).stream(QUESTION))


def test_connection_refused_gives_unavailable_after_retries(sleeps):
    """A refused connection is retried with backoff (sleeps recorded, not timed), then is unavailable."""
    url = closed_port_url()
    with pytest.raises(UnavailableError, match=r"cannot reach TGI server .* \(after 2 retries\)") as info:
        make(url, max_retries=2, backoff=0.05).generate(QUESTION)
    assert len(sleeps) == 2
    assert 0.0375 <= sleeps[0] <= 0.05 and 0.075 <= sleeps[1] <= 0.1
    assert info.value.http_status == 503
    with pytest.raises(UnavailableError):
        list(make(url).stream(QUESTION))


def test_a_dropped_stream_gives_upstream_error(srv):
    url, state = srv
    state.drop_after = 3
    received: list[str] = []
    with pytest.raises(UpstreamError, match="broke off the stream") as info:
        for delta in make(url, max_retries=2).stream(QUESTION):
            received.append(delta.text)
    assert not isinstance(info.value, UpstreamTimeoutError)
    assert "".join(received) == "The river flows"
    assert len(state.on("/generate_stream")) == 1  # tokens were delivered: not retried


def test_an_error_event_in_the_stream_gives_upstream_error(srv):
    url, state = srv
    state.error_event_after = 2
    with pytest.raises(UpstreamError, match="CUDA OOM"):
        list(make(url).stream(QUESTION))


def test_a_stream_without_its_final_message_gives_upstream_error(srv):
    url, state = srv
    state.no_details = True
    with pytest.raises(UpstreamError, match="without its final message"):
        list(make(url).stream(QUESTION))


def test_server_info(srv):
    url, _ = srv
    info = make(url).server_info()
    assert info["model_id"] == "fake/tgi-model"
    assert info["max_total_tokens"] == 4096
    with pytest.raises(ConfigError, match="404"):
        make(url + "/not-tgi").server_info()
    with pytest.raises(UnavailableError):
        make(closed_port_url()).server_info()


def test_concurrent_streams_share_one_client(srv):
    url, state = srv
    state.chunk_delay = 0.002
    generator = make(url)
    results: list[str] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            options = GenerationOptions(max_tokens=3 + i % 3)
            results.append("".join(d.text for d in generator.stream(QUESTION, options)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == sorted(["The river flows", "The river flows through", "The river flows through the"] * 2)
    client = generator._client
    generator.generate(QUESTION)
    assert generator._client is client
    generator.close()
    assert generator._client is None
    assert generator.generate(QUESTION).text == ANSWER  # reopens


# -- offline mode -------------------------------------------------------------------------------


def test_works_in_hub_offline_mode(srv, monkeypatch):
    """``HF_HUB_OFFLINE`` is read at import; the flag the library checks is patched to what the variable gives."""
    import huggingface_hub.constants
    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import OfflineModeIsEnabled

    url, _ = srv
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    # the premise: the library's own client refuses even a local server
    with pytest.raises(OfflineModeIsEnabled):
        InferenceClient(base_url=url).text_generation("hi", model=url + "/generate")
    generator = make(url)
    assert generator.generate(QUESTION).text == ANSWER
    assert "".join(d.text for d in generator.stream(QUESTION)) == ANSWER
    assert generator.count_tokens("The river flows.") == 5


def test_works_in_a_process_started_with_hf_hub_offline(srv):
    url, _ = srv
    script = (
        "import sys\n"
        "from ragkit.registry import build\n"
        "from ragkit.generation.base import Message\n"
        "g = build('generator', {'type': 'tgi', 'base_url': sys.argv[1], 'max_retries': 0})\n"
        "print(g.generate([Message('user', 'hi')]).text)\n"
        "print(''.join(d.text for d in g.stream([Message('user', 'hi')])))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script, url], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [ANSWER, ANSWER]


# -- config -----------------------------------------------------------------------------------------


def test_config_round_trip_through_the_registry(srv):
    url, _ = srv
    config = {
        "type": "tgi",
        "base_url": url,
        "chat_template": CHATML_TEMPLATE,
        "timeout": 12.5,
        "max_new_tokens": 64,
        "temperature": 0.0,
        "context_window": 8192,
        "model_name": "qwen2.5",
        "api_key_env": "TGI_KEY",
        "max_retries": 1,
        "backoff": 0.2,
    }
    generator = build("generator", config)
    assert isinstance(generator, TGIGenerator)
    saved = generator.to_config()
    assert {key: saved[key] for key in config} == config
    again = build("generator", saved)
    assert again.to_config() == saved
    assert (again.model_name, again.context_window) == ("qwen2.5", 8192)
    assert again.generate(QUESTION).text == ANSWER


@pytest.mark.parametrize(
    "bad",
    [
        {"base_url": "localhost:8080"},
        {"chat_template": ""},
        {"timeout": 0},
        {"max_new_tokens": 0},
        {"temperature": -1},
        {"context_window": 1.5},
        {"model_name": ""},
        {"api_key_env": 3},
        {"max_retries": -1},
        {"backoff": "slow"},
        {"tokenizer": "/no/such/folder"},
        {"nonsense": True},
    ],
)
def test_bad_config_fails_when_built(bad):
    config = {"type": "tgi", "base_url": "http://127.0.0.1:9", **bad}
    with pytest.raises(ConfigError):
        build("generator", config)
