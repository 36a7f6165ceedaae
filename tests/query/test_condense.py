"""The condense transform: a follow-up plus history becomes a standalone question that retrieval can use.

Retrieval runs over a real small collection (real embedder, FAISS, SQLite)
of three landmarks whose construction sections all say "it was built ...".
``FakeCondenseGenerator`` is a test double that replays scripted outputs to
provoke what small models do (prefixes, quotes, answers instead of
questions, garbage, exceptions, hangs); one slow test runs the packaged
SmolLM2 for real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ragkit import Collection
from ragkit.errors import ConfigError
from ragkit.generation import BaseGenerator, GenerationDelta, GenerationOptions, Message, Usage
from ragkit.query import PipelineContext, QueryPipeline, QueryRequest, QueryState, build_stage
from ragkit.query.condense import CondenseStage, clean_question
from ragkit.query.driver import run_now
from ragkit.query.state import Query
from ragkit.registry import register

DOCS = {
    "eiffel-tower.md": """# The Eiffel Tower

## History

The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, named after the engineer Gustave
Eiffel, whose company erected it between 1887 and 1889 as the entrance arch of the 1889 World's Fair. Many of
France's leading artists at first criticised its design.

## Height and visitors

The tower is 330 metres tall and was the tallest man-made structure in the world until 1930. It has three levels
open to visitors, with restaurants on the first and second levels, and it receives around six million visitors a
year.
""",
    "golden-gate-bridge.md": """# The Golden Gate Bridge

## Construction

The Golden Gate Bridge spans the strait between San Francisco Bay and the Pacific Ocean. It was built in four years:
work began in January 1933 and it opened in May 1937. When it was built, it had the longest suspension span in the
world.

## Colour and traffic

The bridge is painted International Orange so that it stays visible in the fog. About 112,000 vehicles cross it
every day, and a toll is collected from drivers heading south into San Francisco.
""",
    "sydney-opera-house.md": """# The Sydney Opera House

## Building work

The Sydney Opera House stands on Bennelong Point in Sydney Harbour. Building work began in 1959 and it was finished
in 1973: it was built ten years later than planned and far over budget.

## Performances

The house holds several venues, the largest being the Concert Hall with about 2,700 seats. More than 1,500
performances take place there each year.
""",
}
HISTORY = [
    Message("user", "What is the Eiffel Tower?"),
    Message("assistant", "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris [1]."),
]
FOLLOW_UP = "when was it built?"
STANDALONE = "When was the Eiffel Tower built?"


@register("generator", "test-fake-condense")
class FakeCondenseGenerator(BaseGenerator):
    """A FAKE generator: replays ``output`` ("<raise>" raises, "<hang>" sleeps ``hang`` s first); keeps prompts."""

    def __init__(self, output: str = STANDALONE, hang: float = 3.0) -> None:
        self.output = output
        self.hang = hang
        self.prompts: list[str] = []

    @property
    def model_name(self) -> str:
        return "fake-condense"

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        self.prompts.append(messages[-1].content)
        if self.output == "<raise>":
            raise RuntimeError("the model server went away")
        if self.output == "<hang>":
            time.sleep(self.hang)
        yield GenerationDelta(text=self.output)
        yield GenerationDelta(finish_reason="stop", usage=Usage(self.count_message_tokens(messages), 8))


@pytest.fixture(scope="module")
def landmarks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collection]:
    folder = tmp_path_factory.mktemp("landmarks")
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    with Collection.create("landmarks", store_dir=tmp_path_factory.mktemp("store")) as collection:
        report = collection.ingest([folder])
        assert not report.failed
        yield collection


def pipeline(output: str = STANDALONE, **options) -> QueryPipeline:
    """condense (with the fake, given as the pipeline's generator) then dense retrieval."""
    # a fresh output string per test keeps shared_generator's per-config instances apart
    context = PipelineContext({"type": "test-fake-condense", "output": output})
    return QueryPipeline.from_configs([{"type": "condense", **options}, "dense"], top_k=3, context=context)


def ask(search: QueryPipeline, collection: Collection, question: str, history: list[Message]) -> QueryState:
    state = search.start(QueryRequest(question, history=list(history)), collection)
    run_now(search.execute([state], sync=True))
    return state


def fake_of(search: QueryPipeline) -> FakeCondenseGenerator:
    stage = search.stages[0]
    assert isinstance(stage, CondenseStage)
    generator = stage.generator
    assert isinstance(generator, FakeCondenseGenerator)
    return generator


def source(state: QueryState, rank: int = 0) -> str:
    return Path(state.hits[rank].chunk.source).name


# -- the point of it ----------------------------------------------------------------------------


def test_a_condensed_follow_up_finds_the_chunk_the_bare_follow_up_misses(landmarks):
    bare = ask(QueryPipeline.from_configs(["dense"], top_k=3), landmarks, FOLLOW_UP, HISTORY)
    assert source(bare) != "eiffel-tower.md"  # "it" could be any of the landmarks: another one ranks first

    search = pipeline('Standalone question: "When was the Eiffel Tower built?"')
    state = ask(search, landmarks, FOLLOW_UP, HISTORY)
    assert source(state) == "eiffel-tower.md" and "1887" in state.hits[0].chunk.text
    assert state.hits[0].score > bare.hits[0].score + 0.2
    assert state.question == STANDALONE
    assert state.request.options["asked"] == FOLLOW_UP
    assert state.queries == [Query(STANDALONE, "question", "condense")]  # the follow-up no longer retrieves
    entry = state.current("condense")
    assert [c.model for c in entry.calls] == ["fake-condense"]
    assert entry.calls[0].completion_tokens == 8 and entry.calls[0].error is None
    assert entry.queries == [{"text": STANDALONE, "kind": "question", "origin": "condense"}]
    assert any("condensed the follow-up" in note for note in entry.notes)
    prompt = fake_of(search).prompts[0]
    assert "User: What is the Eiffel Tower?" in prompt and "Question: when was it built?" in prompt


def test_without_history_the_stage_is_skipped_and_says_so(landmarks):
    search = pipeline("skip-me")
    state = ask(search, landmarks, "When was the Golden Gate Bridge built?", [])
    entry = state.current("condense")
    assert entry.skipped and entry.calls == []
    assert entry.notes == ["skipped: no conversation history; the question is used as asked"]
    assert state.question == "When was the Golden Gate Bridge built?" and "asked" not in state.request.options
    assert source(state) == "golden-gate-bridge.md"
    assert fake_of(search).prompts == []


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("", "output was empty"),
        ("  \n\n ", "output was empty"),
        ("?!?! 1889 ###", "not a question"),
        ("The Eiffel Tower was built between 1887 and 1889.", "answered instead of rewriting"),
        ("What " + "really " * 120 + "happened?", "too long for a question"),
        ("<raise>", "the model failed (RuntimeError: the model server went away)"),
        ("<hang>", "did not answer within 0.3 s"),
    ],
)
def test_unusable_model_output_keeps_the_question_as_asked(landmarks, output, reason):
    # only the hanging model gets the short limit: a busy machine must not turn the others into timeouts
    state = ask(pipeline(output, timeout=0.3 if output == "<hang>" else 30), landmarks, FOLLOW_UP, HISTORY)
    entry = state.current("condense")
    assert entry.error is None  # handled, not a stage failure
    assert any(reason in note and note.endswith("used as asked") for note in entry.notes), entry.notes
    assert len(entry.calls) == 1
    assert state.question == FOLLOW_UP and "asked" not in state.request.options
    assert state.queries == [Query(FOLLOW_UP)]
    assert state.hits  # retrieval still ran on the follow-up


def test_a_batch_makes_one_call_per_distinct_follow_up(landmarks):
    search = pipeline("When was the Eiffel Tower built?")
    states = [
        search.start(QueryRequest(FOLLOW_UP, history=list(HISTORY)), landmarks),
        search.start(QueryRequest("How tall is the Eiffel Tower?"), landmarks),
        search.start(QueryRequest(FOLLOW_UP, history=list(HISTORY)), landmarks),
        search.start(QueryRequest("how tall is it?", history=list(HISTORY)), landmarks),
    ]
    run_now(search.execute(states, sync=True))
    assert len(fake_of(search).prompts) == 2
    assert [s.question for s in states] == [STANDALONE, "How tall is the Eiffel Tower?", STANDALONE, STANDALONE]
    assert [bool(s.current("condense").skipped) for s in states] == [False, True, False, False]
    assert states[2].current("condense").calls[0].cached  # the duplicate shared the first one's answer


def test_the_async_path_condenses_too(landmarks):
    search = pipeline("Standalone question: When was the Eiffel Tower built?")
    state = search.start(QueryRequest(FOLLOW_UP, history=list(HISTORY)), landmarks)
    asyncio.run(search.execute([state]))
    assert state.question == STANDALONE and source(state) == "eiffel-tower.md"


# -- cleaning and configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (STANDALONE, STANDALONE),
        (f'"{STANDALONE}"', STANDALONE),
        (f"Standalone question: {STANDALONE}", STANDALONE),
        (f"Here is the rewritten question: “{STANDALONE}”\n\nI replaced 'it'.", STANDALONE),
        (f"**{STANDALONE}**", STANDALONE),
        (f"Standalone question:\n{STANDALONE}", STANDALONE),
        (f"Rewritten: {STANDALONE}\n\nQuestion: when was it built?", STANDALONE),
        ("Tell me about the Eiffel Tower's designer", "Tell me about the Eiffel Tower's designer"),
    ],
)
def test_small_model_wrapping_is_stripped(output, expected):
    assert clean_question(output, FOLLOW_UP) == (expected, "")


def test_options_are_validated_when_built_and_round_trip():
    with pytest.raises(ConfigError, match=r"prompt must contain \{question\}"):
        build_stage({"type": "condense", "prompt": "History: {history}"})
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \{collection\}"):
        build_stage({"type": "condense", "prompt": "{history} {question} {collection}"})
    with pytest.raises(ConfigError, match="not a valid template"):
        build_stage({"type": "condense", "prompt": "{history} {question} {"})
    with pytest.raises(ConfigError, match="max_tokens must be an integer of at least 1"):
        build_stage({"type": "condense", "max_tokens": 0})
    with pytest.raises(ConfigError, match="timeout must be a positive number"):
        build_stage({"type": "condense", "timeout": -1})
    with pytest.raises(ConfigError, match="no generator named 'nope'"):
        build_stage({"type": "condense", "generator": {"type": "nope"}})
    with pytest.raises(ConfigError, match="unknown option"):
        build_stage({"type": "condense", "keep_original": True})

    config = {"type": "condense", "generator": {"type": "test-fake-condense"}, "max_tokens": 32, "timeout": 5}
    stage = build_stage(config)
    again = build_stage(stage.to_config())
    assert again.to_config() == stage.to_config()
    assert stage.to_config()["max_tokens"] == 32 and stage.to_config()["generator"] == {"type": "test-fake-condense"}
    stage.bind(PipelineContext({"type": "transformers"}))
    assert stage.generator_config == {"type": "test-fake-condense"}  # its own generator wins
    plain = build_stage("condense")
    plain.bind(PipelineContext({"type": "test-fake-condense", "output": "x"}))
    assert plain.generator_config == {"type": "test-fake-condense", "output": "x"}
    assert plain.to_config()["generator"] is None  # the pipeline's generator is not written into the stage


# -- the real local model -------------------------------------------------------------------------


@pytest.mark.slow
def test_the_packaged_local_model_condenses_a_follow_up(landmarks):
    search = QueryPipeline.from_configs(
        [{"type": "condense", "timeout": 120}, "dense"], top_k=3, context=PipelineContext({"type": "transformers"})
    )
    state = ask(search, landmarks, FOLLOW_UP, HISTORY)
    entry = state.current("condense")
    assert entry.error is None
    assert len(entry.calls) == 1 and entry.calls[0].model == "SmolLM2-135M-Instruct"
    assert entry.calls[0].error is None and entry.calls[0].completion_tokens > 0
    assert entry.notes  # what it decided, either way
    assert isinstance(state.question, str) and state.question.strip()
    assert len(state.queries) == 1 and state.queries[0].text == state.question
    assert state.hits
