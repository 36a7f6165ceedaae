"""The transformers generator with the real packaged SmolLM2-135M-Instruct (no mocks).

The model loads once for the whole module (about 15 s on 2 CPU cores);
answers are kept to at most 32 new tokens.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ragkit_transformers import PACKAGED_GGUF_FILE, PACKAGED_MODEL_NAME, TransformersGenerator
from ragkit_transformers.source import packaged_model_dir

from ragkit.errors import ConfigError, InputError
from ragkit.generation import Generation, GenerationDelta, GenerationOptions, Generator, Message, Usage
from ragkit.registry import build
from ragkit.testing.generator_conformance import GeneratorConformance

torch = pytest.importorskip("torch")
runtime = pytest.importorskip("ragkit_transformers.runtime")

QUESTION = [
    Message("user", "Context: The Eiffel Tower was completed in 1889. Question: When was the Eiffel Tower completed?")
]
SHORT = [Message("user", "What is 2+2? Reply with only the number.")]  # ends with <|im_end|> well before 32 tokens
SLOW_STOP = GenerationOptions(max_tokens=200)  # long enough that only a cancel ends it early


@pytest.fixture(scope="module")
def generator() -> TransformersGenerator:
    gen = build("generator", {"type": "transformers", "max_new_tokens": 32})
    started = time.perf_counter()
    gen.load()
    print(f"\nloaded {gen.model_name} in {time.perf_counter() - started:.1f} s")
    return gen


@pytest.fixture(scope="module")
def answer(generator) -> Generation:
    return generator.generate(QUESTION)


def generate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(runtime.THREAD_NAME_PREFIX)]


def cancel_log(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "generation cancelled after" in r.getMessage()]


class TestConformance(GeneratorConformance):
    """The generator conformance suite every generator connector runs, on the real packaged model."""


# -- config, registry, lazy loading ---------------------------------------------------


def test_constructing_and_to_config_load_nothing():
    """In a fresh process: building from config and to_config() import no torch, let alone load a model."""
    code = (
        "import json, sys\n"
        "from ragkit.registry import build\n"
        "g = build('generator', {'type': 'transformers', 'max_new_tokens': 16, 'dtype': 'bf16'})\n"
        "cfg = g.to_config()\n"
        "again = build('generator', json.loads(json.dumps(cfg)))\n"
        "print(json.dumps([cfg == again.to_config(), g.is_loaded, 'torch' in sys.modules, g.model_name]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == [True, False, False, PACKAGED_MODEL_NAME], out.stderr


def test_config_round_trip_through_the_registry():
    config = {
        "type": "transformers",
        "model": str(packaged_model_dir() / PACKAGED_GGUF_FILE),
        "device": "cpu",
        "dtype": "float32",
        "max_new_tokens": 24,
        "temperature": 0.5,
        "context_window": 4096,
        "threads": 2,
    }
    gen = build("generator", config)
    assert isinstance(gen, TransformersGenerator)
    assert not gen.is_loaded
    assert gen.to_config() == {**config, "gguf_file": None, "quantize": None}  # quantize: auto
    assert json.loads(json.dumps(gen.to_config())) == gen.to_config()
    rebuilt = build("generator", gen.to_config())
    assert rebuilt.to_config() == gen.to_config()
    assert gen.context_window == 4096  # known without loading
    assert not gen.is_loaded
    assert gen.default_options.max_tokens == 24
    assert gen.default_options.temperature == 0.5


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_new_tokens": 0}, "'max_new_tokens'"),
        ({"max_new_tokens": True}, "'max_new_tokens'"),
        ({"temperature": -0.1}, "'temperature'"),
        ({"temperature": "hot"}, "'temperature'"),
        ({"context_window": 8}, "'context_window'"),
        ({"context_window": 512, "max_new_tokens": 512}, "'max_new_tokens': 512 leaves no room"),
        ({"threads": 0}, "'threads'"),
        ({"device": "gpu"}, "'device'"),
        ({"dtype": "int4"}, "'dtype'"),
        ({"device": "cpu", "dtype": "fp16"}, "float16 is not supported on the CPU"),
        ({"temperture": 0.2}, "unknown option"),
    ],
)
def test_bad_options_fail_at_build_time(options, match):
    with pytest.raises(ConfigError, match=match):
        build("generator", {"type": "transformers", **options})


def test_is_a_generator(generator):
    assert isinstance(generator, Generator)
    assert generator.model_name == "SmolLM2-135M-Instruct"
    assert generator.context_window == 8192  # max_position_embeddings of SmolLM2-135M
    assert (generator.device, generator.dtype) == ("cpu", "float32")


def test_model_is_loaded_once_and_shared(generator):
    other = TransformersGenerator(max_new_tokens=8)  # same model, device and dtype
    gguf_path = TransformersGenerator(model=str(packaged_model_dir() / PACKAGED_GGUF_FILE), device="cpu")
    assert not other.is_loaded
    assert other.load() is generator.load()
    assert other.load().model is generator.load().model
    assert gguf_path.load().model is generator.load().model  # the same file by another name
    assert gguf_path.model_name == "SmolLM2-135M-Instruct.Q4_1"
    keys = [key for key in runtime.loaded_models() if key[1] == PACKAGED_GGUF_FILE and key[2:] == ("cpu", "float32")]
    assert len(keys) == 1


def test_context_window_beyond_the_model_fails_on_load(generator):
    gen = TransformersGenerator(context_window=100_000)
    with pytest.raises(ConfigError, match="'context_window': 100000 exceeds the model's 8192 positions"):
        gen.load()


# -- answers --------------------------------------------------------------------------


def test_grounded_answer(answer):
    assert "1889" in answer.text
    assert answer.model == "SmolLM2-135M-Instruct"
    assert answer.finish_reason in ("stop", "length")


def test_stream_joins_to_the_same_text_as_generate(generator, answer):
    deltas = list(generator.stream(QUESTION))
    assert all(isinstance(d, GenerationDelta) for d in deltas)
    assert all(d.text for d in deltas[:-1])
    assert [d.finish_reason is not None for d in deltas] == [False] * (len(deltas) - 1) + [True]
    assert deltas[-1].usage == answer.usage
    assert "".join(d.text for d in deltas) == answer.text


def test_stream_text_is_the_decoded_model_output(generator, answer):
    """The streamed pieces join to exactly what model.generate + decode gives directly."""
    loaded = generator.load()
    prompt = loaded.encode_messages([{"role": "user", "content": QUESTION[0].content}])
    with torch.inference_mode():
        out = loaded.model.generate(
            input_ids=torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=32,
            do_sample=False,
            pad_token_id=loaded.pad_token_id,
        )
    new_ids = out[0, len(prompt) :].tolist()
    assert loaded.tokenizer.decode(new_ids, skip_special_tokens=True) == answer.text
    assert answer.usage.completion_tokens == len(new_ids)


def test_usage_counts_are_the_tokenizers(generator, answer):
    loaded = generator.load()
    chat = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION[0].content}], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert answer.usage.prompt_tokens == generator.count_message_tokens(QUESTION) == len(chat) == 55
    assert answer.finish_reason == "length"
    assert answer.usage.completion_tokens == 32 == generator.count_tokens(answer.text)
    assert answer.usage.total_tokens == 55 + 32


def test_end_of_sequence_finishes_with_stop(generator):
    result = generator.generate(SHORT)
    assert "4" in result.text
    assert result.finish_reason == "stop"
    # the end-of-sequence token counts as generated, but is not text
    assert result.usage.completion_tokens == generator.count_tokens(result.text) + 1 < 32


def test_count_tokens(generator):
    assert generator.count_tokens("") == 0
    assert generator.count_tokens("Hello world") == 2
    assert generator.count_message_tokens([Message("system", "Be brief."), *SHORT]) < generator.count_message_tokens(
        SHORT
    )  # a system message replaces the template's default, longer one


def test_max_tokens_gives_length(generator):
    result = generator.generate(QUESTION, GenerationOptions(max_tokens=5))
    assert result.finish_reason == "length"
    assert 0 < result.usage.completion_tokens <= 5
    assert result.text
    assert generator.count_tokens(result.text) <= 5


def test_stop_string_cuts_the_text(generator, answer):
    assert "1889" in answer.text
    result = generator.generate(QUESTION, GenerationOptions(stop=["1889"]))
    assert result.finish_reason == "stop"
    assert "1889" not in result.text
    assert result.text == answer.text[: answer.text.index("1889")]
    # generation stopped at the stop string, not at max_tokens
    assert result.usage.completion_tokens < answer.usage.completion_tokens
    streamed = "".join(d.text for d in generator.stream(QUESTION, GenerationOptions(stop=["zzz", "1889"])))
    assert streamed == result.text


def test_sampling_honours_the_seed(generator):
    options = GenerationOptions(temperature=0.9, top_p=0.95, seed=7, max_tokens=16)
    first = generator.generate(QUESTION, options)
    second = generator.generate(QUESTION, options)
    assert first.text == second.text
    assert first.usage.completion_tokens <= 16


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (GenerationOptions(max_tokens=0), "'max_tokens'"),
        (GenerationOptions(temperature=-1), "'temperature'"),
        (GenerationOptions(top_p=1.5), "'top_p'"),
        (GenerationOptions(seed="x"), "'seed'"),  # type: ignore[arg-type]
        (GenerationOptions(stop=[3]), "'stop'"),  # type: ignore[list-item]
        (GenerationOptions(tools=[{"type": "function", "function": {"name": "f"}}]), "does not support tools"),
    ],
)
def test_bad_call_options(generator, options, match):
    with pytest.raises(InputError, match=match):
        generator.stream(QUESTION, options)


def test_no_messages(generator):
    with pytest.raises(InputError, match="non-empty list"):
        generator.generate([])


def test_too_long_prompt_is_refused_before_streaming(generator):
    long = [Message("user", "word " * 9000)]
    tokens = generator.count_message_tokens(long)
    assert tokens > 8192 - 32
    with pytest.raises(InputError, match=rf"the prompt is {tokens} tokens; with max_tokens 32 it may be at most 8160"):
        generator.stream(long)  # raised by the call itself, not on first next()
    small = TransformersGenerator(context_window=64, max_new_tokens=16)
    with pytest.raises(InputError, match=r"the prompt is 55 tokens; with max_tokens 16 it may be at most 48 \("):
        small.generate(QUESTION)
    with pytest.raises(InputError, match="'max_tokens': 64 leaves no room"):
        small.generate(QUESTION, GenerationOptions(max_tokens=64))
    assert small.generate(QUESTION, GenerationOptions(max_tokens=9)).usage.completion_tokens == 9  # 55 + 9 = 64 fits


# -- cancellation and concurrency ---------------------------------------------------


@pytest.mark.timeout(120)  # bounds a hang; how soon it stops is counted in tokens, not seconds
def test_closing_the_stream_stops_the_model(generator, caplog):
    """Closing a stream stops generation within a few tokens, and close() returns once the worker is joined."""
    caplog.set_level(logging.DEBUG, logger="ragkit_transformers")
    stream = generator.stream(QUESTION, SLOW_STOP)
    deltas = [next(stream) for _ in range(3)]
    assert all(d.text and d.finish_reason is None for d in deltas)
    stream.close()
    assert generate_threads() == []  # joined before close() returned
    [message] = cancel_log(caplog)
    generated = int(message.split(" after ")[1].split()[0])
    assert generated < 20, message  # 3 word-deltas in, a few tokens more at most: far from 200
    assert "(generating)" in message


def test_dropping_a_for_loop_early_stops_the_model(generator, caplog):
    caplog.set_level(logging.DEBUG, logger="ragkit_transformers")
    for count, _delta in enumerate(generator.stream(QUESTION, SLOW_STOP), 1):
        if count == 2:
            break
    # CPython closes the abandoned generator at once (reference counting)
    assert generate_threads() == []
    assert len(cancel_log(caplog)) == 1


def test_two_threads_stream_at_once(generator, answer):
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(name: str, messages: list[Message]) -> None:
        try:
            results[name] = "".join(d.text for d in generator.stream(messages))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    short = generator.generate(SHORT).text
    threads = [threading.Thread(target=run, args=("q", QUESTION)), threading.Thread(target=run, args=("s", SHORT))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert results == {"q": answer.text, "s": short}
    assert generate_threads() == []


@pytest.mark.timeout(120)  # bounds a hang; no assertion on seconds
def test_cancel_from_another_thread_while_waiting_for_the_lock(generator, caplog):
    """A stream queued behind the model's lock ends at once on cancel(), without waiting for the holder.

    The holder's worker (200 tokens) is still going when the cancelled one
    has ended, and the cancelled one never generated a token.
    """
    caplog.set_level(logging.DEBUG, logger="ragkit_transformers")
    holder = generator.stream(QUESTION, SLOW_STOP)
    next(holder)  # its worker now holds the model's lock, generating up to 200 tokens
    waiting = generator.stream(QUESTION)
    got: list[GenerationDelta] = []
    consumer = threading.Thread(target=lambda: got.extend(waiting))
    consumer.start()
    consumer.join(timeout=0.5)
    assert consumer.is_alive() and not got  # blocked in next(): its worker waits for the lock
    assert len(generate_threads()) == 2
    waiting.cancel()
    consumer.join(timeout=100)
    assert not consumer.is_alive()
    assert len(generate_threads()) == 1, "the cancelled stream waited for the holder's 200 tokens"
    assert got == [GenerationDelta(finish_reason="cancelled", usage=Usage(prompt_tokens=55, completion_tokens=0))]
    assert any("cancelled after 0 of at most 32 new tokens (before it started)" in m for m in cancel_log(caplog))
    assert next(holder).text  # the holder goes on
    holder.close()
    assert generate_threads() == []


def test_cancel_from_another_thread_while_generating(generator, answer):
    stream = generator.stream(QUESTION, SLOW_STOP)
    first = next(stream)
    stream.cancel()
    rest = list(stream)
    final = rest[-1]
    assert final.finish_reason == "cancelled"
    assert final.usage is not None and 0 < final.usage.completion_tokens < 40
    text = first.text + "".join(d.text for d in rest)
    assert text and answer.text.startswith(text)
    assert generate_threads() == []


# -- async ------------------------------------------------------------------------------


def test_astream_and_agenerate(generator, answer):
    async def main() -> tuple[list[GenerationDelta], Generation]:
        deltas = [d async for d in generator.astream(QUESTION)]
        return deltas, await generator.agenerate(QUESTION)

    deltas, result = asyncio.run(main())
    assert "".join(d.text for d in deltas) == answer.text == result.text
    assert deltas[-1].finish_reason == result.finish_reason == "length"
    assert result.usage == answer.usage


def test_cancelling_an_astream_consumer_stops_the_worker(generator, caplog):
    caplog.set_level(logging.DEBUG, logger="ragkit_transformers")

    async def main() -> int:
        seen = 0
        stream = generator.astream(QUESTION, SLOW_STOP)
        async for _delta in stream:
            seen += 1
            if seen == 3:
                break
        await stream.aclose()
        return seen

    assert asyncio.run(main()) == 3
    assert generate_threads() == []
    [message] = cancel_log(caplog)
    assert int(message.split(" after ")[1].split()[0]) < 50, message  # of 200


def test_cancelling_an_astream_task_stops_the_worker(generator, caplog):
    caplog.set_level(logging.DEBUG, logger="ragkit_transformers")

    async def main() -> None:
        first = asyncio.Event()

        async def consume() -> None:
            async for _delta in generator.astream(QUESTION, SLOW_STOP):
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert generate_threads() == []
    assert len(cancel_log(caplog)) == 1


@pytest.mark.timeout(120)  # bounds a hang; no assertion on seconds
def test_cancelling_an_astream_task_waiting_for_the_lock(generator):
    """Cancelling an astream task queued behind the model's lock ends it without waiting for the holder.

    The holder's worker (200 tokens) is still going when the cancelled task has ended.
    """
    holder = generator.stream(QUESTION, SLOW_STOP)
    next(holder)  # holds the model's lock

    async def main() -> None:
        got: list[GenerationDelta] = []

        async def consume() -> None:
            async for delta in generator.astream(QUESTION):
                got.append(delta)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        assert not got  # still waiting for its turn
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not got

    asyncio.run(main())
    # only the holder's worker is left, still generating: the cancel did not wait for its 200 tokens
    assert len(generate_threads()) == 1
    holder.close()
    assert generate_threads() == []


# -- other model forms ---------------------------------------------------------------------


def save_as_transformers_folder(generator: TransformersGenerator, folder: Path) -> None:
    """The de-quantized GGUF model as a plain transformers folder (safetensors + tokenizer)."""
    from transformers import AutoModelForCausalLM

    loaded = generator.load()
    config = copy.deepcopy(loaded.model.config)
    if hasattr(config, "quantization_config"):  # a GGUF-loaded model refuses save_pretrained itself
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.model.state_dict())
    fresh.generation_config = copy.deepcopy(loaded.model.generation_config)
    fresh.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def folder(generator, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "smollm2-folder"
    save_as_transformers_folder(generator, path)
    assert (path / "config.json").is_file()
    return path


def test_a_transformers_folder_gives_the_same_answers(folder, answer):
    before = set(runtime.loaded_models())
    gens = [TransformersGenerator(model=str(folder), device="cpu", max_new_tokens=32) for _ in range(2)]
    assert gens[0].model_name == "smollm2-folder"
    assert not any(g.is_loaded for g in gens)
    got: list[object] = [None, None]

    def load(i: int) -> None:
        got[i] = gens[i].load()

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]  # both ask at once: one load
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert got[0] is got[1] is not None
    assert len(set(runtime.loaded_models()) - before) == 1
    assert gens[0].context_window == 8192
    result = gens[1].generate(QUESTION)
    assert result.text == answer.text  # the de-quantized weights, saved and reloaded: the same model
    assert result.usage == answer.usage
    assert result.model == "smollm2-folder"


def test_bfloat16(folder):
    gen = TransformersGenerator(model=str(folder), dtype="bf16", max_new_tokens=8)
    assert gen.dtype == "bfloat16"
    assert next(gen.load().model.parameters()).dtype == torch.bfloat16
    result = gen.generate(QUESTION)
    assert result.text.strip()
    assert result.usage.completion_tokens <= 8


def test_a_folder_that_is_not_a_model_fails_on_load_with_the_path(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    gen = TransformersGenerator(model=str(tmp_path))  # builds: it looks like a model folder
    with pytest.raises(ConfigError, match=rf"'model': {tmp_path} could not be loaded as a causal LM"):
        gen.load()


def test_a_file_that_is_not_gguf_fails_on_load_with_the_path(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(ConfigError, match=rf"'model': {bad} could not be loaded as a causal LM.*GGUF"):
        TransformersGenerator(model=str(bad)).generate(QUESTION)


# -- hub names and quantisation ---------------------------------------------------------------


def hub_cache_with(folder: Path, cache: Path, repo_id: str) -> Path:
    """``folder`` placed in a Hugging Face hub cache layout as ``repo_id``'s snapshot of ``main``."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).symlink_to(file)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_a_hub_name_is_found_in_the_local_cache_offline(folder, answer, tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    snapshot = hub_cache_with(folder, cache, "acme/smol-instruct")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = TransformersGenerator(model="acme/smol-instruct", device="cpu", max_new_tokens=32)
    assert gen.source.kind == "hub"
    assert gen.model_name == "acme/smol-instruct"
    assert not gen.is_loaded  # nothing looked up until the model is used
    result = gen.generate(QUESTION)
    assert gen.load().source.directory == str(snapshot.resolve())
    assert result.text == answer.text  # the same weights as the packaged model
    assert result.model == "acme/smol-instruct"


def test_a_hub_name_offline_and_not_cached_names_the_repo_and_the_cache(tmp_path, monkeypatch):
    from ragkit.errors import UnavailableError

    cache = tmp_path / "empty-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = TransformersGenerator(model="Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(UnavailableError) as info:
        gen.generate(QUESTION)
    message = str(info.value)
    assert "'Qwen/Qwen2.5-0.5B-Instruct' is not a local path and is not in the Hugging Face cache" in message
    assert str(cache) in message and "HF_HUB_OFFLINE is set" in message


def test_int8_quantisation_replaces_the_linear_layers_and_still_answers():
    gen = TransformersGenerator(quantize="int8", device="cpu", max_new_tokens=32, threads=2)
    assert gen.quantize == "int8"
    model = gen.load().model
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    assert any(isinstance(m, dynamic) for m in model.modules())
    assert not any(type(m) is torch.nn.Linear for m in model.modules())  # every linear layer swapped
    assert "1889" in gen.generate(QUESTION).text
    assert TransformersGenerator(device="cpu").load() is not gen.load()  # the fp32 model is another entry
