"""One conformance suite for the :class:`~ragkit.generation.base.Generator` protocol.

Every generator connector (the local ``transformers`` model, ``openai``,
``tgi``, a third party's) runs the same checks. Two ways to run them. A
plain function, for any test::

    from ragkit.testing.generator_conformance import check_generator

    def test_my_generator_conforms():
        check_generator(MyGenerator())

or a base class whose tests pytest collects, given a ``generator`` fixture::

    from ragkit.testing.generator_conformance import GeneratorConformance

    class TestMyGenerator(GeneratorConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def generator(cls):
            return MyGenerator()

A generator behind a server is checked against a fake one
(:class:`ragkit.testing.fake_openai.FakeOpenAIServer` speaks the OpenAI
and TGI protocols). Checked, at temperature 0 and a few tokens so a real
model stays quick: the model name and context window; token counts are
positive integers that grow with the text and count the chat markup; a
whole answer has text, a known finish reason and usage within
``max_tokens``; the streamed pieces join to the same text, only the last
carries the finish reason; ``max_tokens`` bounds the answer; a stop
sequence cuts the answer before it; closing a stream early (sync or async)
leaves the generator usable; the async twins agree with the sync methods;
no messages is an :class:`~ragkit.errors.InputError`; and the configuration
round-trips through ``to_config`` / ``from_config``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ragkit.errors import InputError
from ragkit.generation.base import Generation, GenerationDelta, GenerationOptions, Generator, Message

MESSAGES: tuple[Message, ...] = (
    Message("system", "You answer in one short sentence."),
    Message("user", "What flows through the city of Paris?"),
)
"""A short chat: a system message and a question."""

MAX_TOKENS = 8
"""The answer length of every check (greedy decoding, so answers repeat)."""

FINISH_REASONS = frozenset({"stop", "length", "tool_calls"})


def _fail(message: str) -> None:
    raise AssertionError(message)


def _options(**overrides: Any) -> GenerationOptions:
    values: dict[str, Any] = {"max_tokens": MAX_TOKENS, "temperature": 0.0, **overrides}
    return GenerationOptions(**values)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_generation(name: str, generation: object, max_tokens: int) -> Generation:
    if not isinstance(generation, Generation):
        _fail(f"{name} returned {type(generation).__name__}, not a Generation")
    assert isinstance(generation, Generation)
    if not isinstance(generation.text, str):
        _fail(f"{name}: text is {type(generation.text).__name__}, not a string")
    if generation.finish_reason not in FINISH_REASONS:
        _fail(f"{name}: finish_reason {generation.finish_reason!r} is not one of {sorted(FINISH_REASONS)}")
    usage = generation.usage
    for field in ("prompt_tokens", "completion_tokens"):
        value = getattr(usage, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            _fail(f"{name}: usage.{field} is {value!r}, expected an int of at least 0")
    if usage.completion_tokens > max_tokens:
        _fail(f"{name}: {usage.completion_tokens} completion tokens with max_tokens={max_tokens}")
    return generation


def _check_deltas(name: str, deltas: list[GenerationDelta]) -> str:
    if not deltas or not all(isinstance(d, GenerationDelta) for d in deltas):
        _fail(f"{name} yielded {[type(d).__name__ for d in deltas]}, expected GenerationDelta pieces")
    if any(d.finish_reason is not None for d in deltas[:-1]):
        _fail(f"{name}: a finish_reason before the last piece")
    if deltas[-1].finish_reason not in FINISH_REASONS:
        _fail(f"{name}: the last piece's finish_reason is {deltas[-1].finish_reason!r}")
    return "".join(d.text for d in deltas)


def check_identity(generator: Generator) -> None:
    """A :class:`Generator` with a non-empty ``model_name`` and a positive ``context_window``."""
    if not isinstance(generator, Generator):
        _fail(f"{type(generator).__name__} does not implement the Generator protocol")
    name = generator.model_name
    if not isinstance(name, str) or not name:
        _fail(f"model_name is {name!r}, expected a non-empty string")
    if not _positive_int(generator.context_window):
        _fail(f"context_window is {generator.context_window!r}, expected a positive int")


def check_token_counts(generator: Generator) -> None:
    """Counts are positive ints, more words give more tokens, and a chat counts more than its content."""
    short = generator.count_tokens("word")
    long = generator.count_tokens("word " * 50)
    if not _positive_int(short) or not _positive_int(long):
        _fail(f"count_tokens gave {short!r} and {long!r}, expected positive ints")
    if long <= short:
        _fail(f"count_tokens: 50 words ({long}) not more than one word ({short})")
    chat = generator.count_message_tokens(list(MESSAGES))
    content = sum(generator.count_tokens(m.content) for m in MESSAGES)
    if not _positive_int(chat) or chat < content:
        _fail(f"count_message_tokens gave {chat!r}, less than the {content} tokens of the contents")


def check_generate(generator: Generator) -> None:
    """``generate`` returns a :class:`Generation` with text, a known finish reason and bounded usage."""
    _check_generation("generate", generator.generate(list(MESSAGES), _options()), MAX_TOKENS)


def check_stream_joins_to_generate(generator: Generator) -> None:
    """The streamed pieces join to the text of ``generate``; only the last one has the finish reason."""
    whole = generator.generate(list(MESSAGES), _options())
    streamed = _check_deltas("stream", list(generator.stream(list(MESSAGES), _options())))
    if streamed != whole.text:
        _fail(f"stream joined to {streamed!r}, generate gave {whole.text!r}")


def check_max_tokens(generator: Generator) -> None:
    """``max_tokens=2`` gives at most two completion tokens, whole and streamed."""
    generation = _check_generation(
        "generate(max_tokens=2)", generator.generate(list(MESSAGES), _options(max_tokens=2)), 2
    )
    deltas = list(generator.stream(list(MESSAGES), _options(max_tokens=2)))
    if _check_deltas("stream(max_tokens=2)", deltas) != generation.text:
        _fail("stream(max_tokens=2) and generate(max_tokens=2) disagree")
    usage = deltas[-1].usage
    if usage is not None and usage.completion_tokens > 2:
        _fail(f"stream(max_tokens=2) reports {usage.completion_tokens} completion tokens")


def check_stop_sequence(generator: Generator) -> None:
    """A stop sequence taken from the answer cuts it there: the text is the part before it, stop left out."""
    text = generator.generate(list(MESSAGES), _options()).text
    words = text.split(" ")
    if len(words) < 3 or not words[2]:
        return  # too short an answer to cut
    stop = " " + words[2]
    cut = generator.generate(list(MESSAGES), _options(stop=[stop])).text
    if stop in cut:
        _fail(f"stop {stop!r}: the answer {cut!r} still contains it")
    if not text.startswith(cut) or len(cut) > text.index(stop):
        _fail(f"stop {stop!r}: {cut!r} is not the answer {text!r} cut before it")
    streamed = "".join(d.text for d in generator.stream(list(MESSAGES), _options(stop=[stop])))
    if streamed != cut:
        _fail(f"stop {stop!r}: stream joined to {streamed!r}, generate gave {cut!r}")


def check_early_close(generator: Generator) -> None:
    """Closing a stream after its first piece raises nothing, and the generator answers again afterwards."""
    stream = generator.stream(list(MESSAGES), _options())
    next(iter(stream))
    close = getattr(stream, "close", None)
    if callable(close):
        close()
    _check_generation("generate after a closed stream", generator.generate(list(MESSAGES), _options()), MAX_TOKENS)


def check_async_twins(generator: Generator) -> None:
    """``agenerate`` and ``astream`` agree with ``generate``; ``aclose()`` mid-stream leaves it usable."""

    async def run() -> tuple[Generation, list[GenerationDelta], Generation]:
        whole = await generator.agenerate(list(MESSAGES), _options())
        deltas = [d async for d in generator.astream(list(MESSAGES), _options())]
        stream = generator.astream(list(MESSAGES), _options())
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]  # an async generator's
        again = await generator.agenerate(list(MESSAGES), _options())
        return whole, deltas, again

    whole, deltas, again = asyncio.run(run())
    _check_generation("agenerate", whole, MAX_TOKENS)
    text = generator.generate(list(MESSAGES), _options()).text
    if whole.text != text:
        _fail(f"agenerate gave {whole.text!r}, generate {text!r}")
    if _check_deltas("astream", deltas) != text:
        _fail("astream joined to a different text than generate")
    if again.text != text:
        _fail("agenerate after an early aclose() gave a different answer")


def check_no_messages(generator: Generator) -> None:
    """No messages is an :class:`~ragkit.errors.InputError`, raised before anything is generated."""
    try:
        generator.generate([], _options())
    except InputError:
        return
    except Exception as exc:
        _fail(f"generate([]) raised {type(exc).__name__}, not InputError: {exc}")
    _fail("generate([]) did not raise InputError")


def check_config_round_trip(generator: Generator) -> None:
    """``to_config()`` builds, through ``from_config``, a generator with the same config."""
    to_config = getattr(generator, "to_config", None)
    from_config = getattr(type(generator), "from_config", None)
    if not callable(to_config) or not callable(from_config):
        return  # not a Component: nothing to round-trip
    config = to_config()
    again = from_config(config)
    if again.to_config() != config:
        _fail(f"to_config -> from_config -> to_config changed the config: {config} -> {again.to_config()}")


CHECKS = (
    check_identity,
    check_token_counts,
    check_generate,
    check_stream_joins_to_generate,
    check_max_tokens,
    check_stop_sequence,
    check_early_close,
    check_async_twins,
    check_no_messages,
    check_config_round_trip,
)


def check_generator(generator: Generator) -> None:
    """Run every check on ``generator``; raises :class:`AssertionError` naming the first failure."""
    for check in CHECKS:
        check(generator)


class GeneratorConformance:
    """Base test class: subclass it and provide a ``generator`` fixture (class scope is cheapest)."""

    def test_identity(self, generator: Generator) -> None:
        """See :func:`check_identity`."""
        check_identity(generator)

    def test_token_counts(self, generator: Generator) -> None:
        """See :func:`check_token_counts`."""
        check_token_counts(generator)

    def test_generate(self, generator: Generator) -> None:
        """See :func:`check_generate`."""
        check_generate(generator)

    def test_stream_joins_to_generate(self, generator: Generator) -> None:
        """See :func:`check_stream_joins_to_generate`."""
        check_stream_joins_to_generate(generator)

    def test_max_tokens(self, generator: Generator) -> None:
        """See :func:`check_max_tokens`."""
        check_max_tokens(generator)

    def test_stop_sequence(self, generator: Generator) -> None:
        """See :func:`check_stop_sequence`."""
        check_stop_sequence(generator)

    def test_early_close(self, generator: Generator) -> None:
        """See :func:`check_early_close`."""
        check_early_close(generator)

    def test_async_twins(self, generator: Generator) -> None:
        """See :func:`check_async_twins`."""
        check_async_twins(generator)

    def test_no_messages(self, generator: Generator) -> None:
        """See :func:`check_no_messages`."""
        check_no_messages(generator)

    def test_config_round_trip(self, generator: Generator) -> None:
        """See :func:`check_config_round_trip`."""
        check_config_round_trip(generator)
