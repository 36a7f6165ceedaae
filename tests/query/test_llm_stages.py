"""LLM query transforms and the LLM reranker over a real collection (real embedder, FAISS, SQLite).

A scripted fake generator provokes what real small models do (chatty lists,
garbage, empty answers, fenced JSON, partial or repeated rankings, slow
answers); one slow test runs the packaged SmolLM2 end to end.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragkit import Collection
from ragkit.errors import ConfigError
from ragkit.generation.base import BaseGenerator, GenerationDelta, GenerationOptions, Message, Usage
from ragkit.query import PipelineContext, QueryPipeline, SearchResult, StageTrace
from ragkit.rag.pipeline import shared_generator
from ragkit.registry import register

QUESTION = "Which team won Super Bowl 50?"
SUPER_BOWL = "super-bowl-50.pdf"


class _CancellableStream:
    """What the fake's ``stream`` returns: waits ``delay`` seconds (cut short by ``cancel``), then answers."""

    def __init__(self, text: str, delay: float) -> None:
        self.text = text
        self.delay = delay
        self.stopped = threading.Event()
        self._parts: Iterator[GenerationDelta] | None = None

    def __iter__(self) -> _CancellableStream:
        return self

    def __next__(self) -> GenerationDelta:
        if self._parts is None:
            if self.delay and self.stopped.wait(self.delay):
                raise StopIteration
            usage = Usage(prompt_tokens=10, completion_tokens=max(1, len(self.text) // 4))
            self._parts = iter([GenerationDelta(self.text), GenerationDelta(finish_reason="stop", usage=usage)])
        return next(self._parts)

    def cancel(self) -> None:
        self.stopped.set()


@register("generator", "test-scripted")
class ScriptedGenerator(BaseGenerator):
    """A FAKE generator for provoking bad model behaviour: it answers from a script, not a model.

    ``replies`` maps a substring of the prompt to the answer (the first match
    wins), ``default`` answers the rest; ``delay`` seconds pass before each
    answer. Every prompt it received is kept in ``prompts``.
    """

    def __init__(self, replies: dict[str, str] | None = None, default: str = "", delay: float = 0.0) -> None:
        self.replies = dict(replies or {})
        self.default = default
        self.delay = delay
        self.prompts: list[str] = []

    @property
    def model_name(self) -> str:
        return "scripted-fake"

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> _CancellableStream:
        prompt = messages[-1].content
        self.prompts.append(prompt)
        text = next((reply for key, reply in self.replies.items() if key in prompt), self.default)
        return _CancellableStream(text, self.delay)


def scripted(**script: Any) -> dict[str, Any]:
    return {"type": "test-scripted", **script}


def fake(config: dict[str, Any]) -> ScriptedGenerator:
    generator = shared_generator(config)
    assert isinstance(generator, ScriptedGenerator)
    return generator


@pytest.fixture()
def store(sample_store: Path, tmp_path: Path) -> Path:
    """A private copy of the sample store, so each test's LLM cache starts empty."""
    target = tmp_path / "store"
    shutil.copytree(sample_store, target, ignore=shutil.ignore_patterns("llm-stages.sqlite*"))
    return target


@pytest.fixture()
def collection(store: Path) -> Iterator[Collection]:
    with Collection.open("sample", store_dir=store) as opened:
        yield opened


def pipeline(stages: list[Any], generator: dict[str, Any], top_k: int = 5) -> QueryPipeline:
    return QueryPipeline.from_configs(stages, top_k=top_k, context=PipelineContext(generator))


def entry(result: SearchResult, label: str) -> StageTrace:
    return next(t for t in result.trace if t.stage == label)


def sources(result: SearchResult) -> list[str]:
    return [Path(h.chunk.source).name for h in result.hits]


# -- query transforms -----------------------------------------------------------------------------


def test_multi_query_adds_cleaned_distinct_rewrites_and_fuses_them(collection: Collection) -> None:
    reply = (
        "Sure! Here are three other versions of the question:\n"
        "1. Who was the winner of Super Bowl 50?\n"
        "2. which team won super bowl 50\n"  # the question again: dropped
        "3. Who won the NFL championship game in February 2016?\n"
        "4. who was the WINNER of super bowl 50?"  # a repeat of 1: dropped
    )
    config = scripted(default=reply)
    search = pipeline([{"type": "multi-query", "n": 3}, {"type": "dense", "top_k": 5}, "rrf"], config)
    result = search.search(QUESTION, collection)

    texts = [q.text for q in result.queries]
    assert texts == [
        QUESTION,
        "Who was the winner of Super Bowl 50?",
        "Who won the NFL championship game in February 2016?",
    ]
    assert [q.origin for q in result.queries] == ["original", "multi-query", "multi-query"]
    trace = entry(result, "multi-query")
    assert trace.queries is not None and len(trace.queries) == 3
    assert any("equal to the question or to an earlier one" in note for note in trace.notes)
    assert trace.calls and trace.calls[0].model == "scripted-fake" and not trace.calls[0].cached
    assert set(entry(result, "dense").candidates or {}) == {"dense", "dense#2", "dense#3"}
    assert sources(result)[0] == SUPER_BOWL
    assert result.hits[0].origin == "fused"


@pytest.mark.parametrize(
    "reply",
    ["", "   \n  ", "!!! ??? 123 ... ###", "1.\n2.\n3."],
    ids=["empty", "blank", "garbage", "empty-items"],
)
def test_unusable_rewrites_keep_the_question_and_say_what_came_back(collection: Collection, reply: str) -> None:
    search = pipeline([{"type": "multi-query"}, {"type": "dense", "top_k": 5}], scripted(default=reply))
    result = search.search(QUESTION, collection)

    assert [q.text for q in result.queries] == [QUESTION]
    trace = entry(result, "multi-query")
    assert trace.error is None
    assert any(note.startswith("no usable query in the model's answer") for note in trace.notes)
    assert sources(result)[0] == SUPER_BOWL


def test_decompose_reads_fenced_json_and_keeps_at_most_n(collection: Collection) -> None:
    reply = (
        "```json\n"
        '{"sub_questions": ["Which teams played in Super Bowl 50?", "Who won Super Bowl 50?", '
        '"Where was Super Bowl 50 played?"]}\n'
        "```"
    )
    search = pipeline([{"type": "decompose", "n": 2}, {"type": "dense", "top_k": 5}], scripted(default=reply))
    result = search.search(QUESTION, collection)

    assert [q.text for q in result.queries[1:]] == ["Which teams played in Super Bowl 50?", "Who won Super Bowl 50?"]
    assert any("beyond n=2" in note for note in entry(result, "decompose").notes)
    # two or more lists and no fusion stage: the pipeline fused them itself
    assert entry(result, "rrf").notes


def test_hyde_retrieves_with_a_passage_embedded_as_a_document(collection: Collection) -> None:
    passage = (
        "Passage: The Denver Broncos won Super Bowl 50, defeating the Carolina Panthers 24-10 "
        "at Levi's Stadium in Santa Clara, California, in February 2016."
    )
    search = pipeline(
        [{"type": "hyde", "keep_original": False}, {"type": "dense", "top_k": 5}], scripted(default=passage)
    )
    result = search.search(QUESTION, collection)

    assert len(result.queries) == 1
    query = result.queries[0]
    assert query.kind == "passage" and query.origin == "hyde"
    assert query.text.startswith("The Denver Broncos won")  # the label is gone
    assert sources(result)[0] == SUPER_BOWL


def test_step_back_takes_the_general_question_out_of_a_chatty_answer(collection: Collection) -> None:
    reply = "A more general question would be:\nWhat is the Super Bowl and how is its champion decided?\n"
    search = pipeline([{"type": "step-back"}, {"type": "dense", "top_k": 5}, "rrf"], scripted(default=reply))
    result = search.search(QUESTION, collection)

    assert [q.text for q in result.queries] == [QUESTION, "What is the Super Bowl and how is its champion decided?"]


def test_a_timed_out_call_is_recorded_and_the_query_still_returns_hits(collection: Collection) -> None:
    config = scripted(default="1. Who won Super Bowl 50?", delay=30.0)
    search = pipeline([{"type": "multi-query", "timeout": 0.2}, {"type": "dense", "top_k": 5}], config)
    result = search.search(QUESTION, collection)

    trace = entry(result, "multi-query")
    assert trace.calls[0].error is not None and "did not answer within 0.2 s" in trace.calls[0].error
    assert trace.error is not None and "the question as asked was kept" in trace.error
    assert [q.text for q in result.queries] == [QUESTION]
    assert sources(result)[0] == SUPER_BOWL


def test_answers_are_cached_in_the_store_home(collection: Collection, store: Path) -> None:
    config = scripted(default="1. Who was the winner of Super Bowl 50?\n2. Super Bowl 50 champion team")
    stages = [{"type": "multi-query", "n": 2}, {"type": "dense", "top_k": 5}, "rrf"]
    questions = [QUESTION, "Where was Super Bowl 50 played?"]
    generator = fake(config)
    before = len(generator.prompts)

    first = pipeline(stages, config).search_many(questions, collection)
    assert len(generator.prompts) - before == 2
    assert (store / "cache" / "llm-stages.sqlite").is_file()

    second = pipeline(stages, config).search_many(questions, collection)
    assert len(generator.prompts) - before == 2  # no new calls
    for old, new in zip(first, second, strict=True):
        calls = entry(new, "multi-query").calls
        assert [c.cached for c in calls] == [True]
        assert calls[0].prompt_tokens == 0  # a cached answer spends no tokens
        assert [q.text for q in new.queries] == [q.text for q in old.queries]
        assert [h.chunk.id for h in new.hits] == [h.chunk.id for h in old.hits]

    # cache: false asks the model again
    pipeline([{**stages[0], "cache": False}, *stages[1:]], config).search(QUESTION, collection)
    assert len(generator.prompts) - before == 3


def test_a_broken_cache_file_only_logs(collection: Collection, store: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = store / "cache" / "llm-stages.sqlite"
    cache.write_bytes(b"this is not a SQLite database" * 100)
    config = scripted(default="1. Who was the winner of Super Bowl 50?")
    with caplog.at_level(logging.WARNING):
        result = pipeline([{"type": "multi-query"}, {"type": "dense"}], config).search(QUESTION, collection)

    assert [q.text for q in result.queries] == [QUESTION, "Who was the winner of Super Bowl 50?"]
    assert entry(result, "multi-query").calls[0].cached is False
    assert "LLM stage cache" in caplog.text


def test_stage_configs_round_trip_through_yaml() -> None:
    configs = [
        {"type": "multi-query", "n": 4, "max_tokens": 200, "timeout": 5, "prompt": "Rewrite {question} {n} ways"},
        {"type": "hyde", "name": "hyde", "generator": {"type": "test-scripted", "default": "x"}},
        {"type": "step-back", "adaptive": {"min_score": 0.5}},
        {"type": "decompose", "n": 2},
        {"type": "dense", "top_k": 10},
        "rrf",
        {"type": "llm-rerank", "method": "listwise", "window": 4, "step": 2, "candidates": 8, "top_k": 3},
    ]
    built = pipeline(configs, scripted(default="x"))
    saved = yaml.safe_load(yaml.safe_dump(built.to_config()))
    rebuilt = pipeline(saved, scripted(default="x"))
    assert rebuilt.to_config() == saved
    assert saved[0]["prompt"] == "Rewrite {question} {n} ways"
    assert saved[1]["generator"] == {"type": "test-scripted", "default": "x"}
    assert saved[6]["method"] == "listwise" and saved[6]["window"] == 4


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"type": "multi-query", "prompt": "Rewrite {query}"}, "unknown placeholder(s) {query}"),
        ({"type": "hyde", "prompt": "Answer {question} in {n} words"}, "unknown placeholder(s) {n}"),
        ({"type": "step-back", "prompt": "Be general."}, "must contain the {question} placeholder"),
        ({"type": "decompose", "prompt": "Split {question"}, "not a valid template"),
        ({"type": "multi-query", "n": 0}, "'n' must be an integer of at least 1"),
        ({"type": "hyde", "timeout": -1}, "'timeout' must be a positive number"),
        ({"type": "llm-rerank", "method": "pairwise"}, "'pointwise' or 'listwise'"),
        ({"type": "llm-rerank", "window": 4, "step": 4}, "'step' must be smaller than window"),
        ({"type": "multi-query", "generator": {"type": "no-such-model"}}, "no generator named 'no-such-model'"),
    ],
)
def test_bad_options_are_refused_when_built(stage: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        pipeline([stage, "dense"], scripted(default="x"))
    assert message in str(raised.value)
    assert "stages[0]" in str(raised.value) or "no-such-model" in str(raised.value)


# -- the LLM reranker -----------------------------------------------------------------------------


def dense_then(rerank: dict[str, Any], config: dict[str, Any], collection: Collection) -> tuple[list[str], Any]:
    """Chunk ids found by dense retrieval alone, and the result after ``rerank``."""
    plain = pipeline([{"type": "dense", "top_k": 5}], config).search(QUESTION, collection)
    result = pipeline([{"type": "dense", "top_k": 5}, rerank], config).search(QUESTION, collection)
    return [h.chunk.id for h in plain.hits], result


def test_listwise_puts_the_hits_in_the_models_order(collection: Collection) -> None:
    config = scripted(default="[3] > [1] > [2] > [5] > [4]")
    incoming, result = dense_then({"type": "llm-rerank", "method": "listwise"}, config, collection)

    assert [h.chunk.id for h in result.hits] == [incoming[i] for i in (2, 0, 1, 4, 3)]
    assert [round(h.score, 6) for h in result.hits] == [1.0, 0.8, 0.6, 0.4, 0.2]
    assert all(h.origin == "reranked" for h in result.hits)
    assert [h.ranks["llm-rerank"] for h in result.hits] == [1, 2, 3, 4, 5]
    assert not entry(result, "llm-rerank").notes


def test_listwise_partial_order_keeps_the_rest_in_incoming_order(collection: Collection) -> None:
    incoming, result = dense_then(
        {"type": "llm-rerank", "method": "listwise"}, scripted(default="[4] > [2]"), collection
    )
    assert [h.chunk.id for h in result.hits] == [incoming[i] for i in (3, 1, 0, 2, 4)]
    assert any("ranked 2 of 5 passages" in note for note in entry(result, "llm-rerank").notes)


def test_listwise_ignores_repeated_and_out_of_range_numbers(collection: Collection) -> None:
    incoming, result = dense_then(
        {"type": "llm-rerank", "method": "listwise"}, scripted(default="[2] > [2] > [9] > [1] > [0]"), collection
    )
    assert [h.chunk.id for h in result.hits] == [incoming[i] for i in (1, 0, 2, 3, 4)]
    notes = entry(result, "llm-rerank").notes
    assert any("out of range 1-5: 9, 0" in note for note in notes)
    assert any("repeated number(s): 2" in note for note in notes)


@pytest.mark.parametrize("reply", ["I cannot rank these passages.", ""], ids=["garbage", "empty"])
def test_unusable_ranking_keeps_the_incoming_order_unmarked(collection: Collection, reply: str) -> None:
    incoming, result = dense_then({"type": "llm-rerank", "method": "listwise"}, scripted(default=reply), collection)
    assert [h.chunk.id for h in result.hits] == incoming
    assert all("llm-rerank" not in h.scores and h.origin != "reranked" for h in result.hits)
    notes = entry(result, "llm-rerank").notes
    assert any("no usable order" in note and "kept the incoming order" in note for note in notes)


def test_listwise_slides_a_window_from_the_bottom_up(collection: Collection) -> None:
    config = scripted(default="[3] > [2] > [1]")  # reverse every window; [3] is out of range in a window of 2
    generator = fake(config)
    before = len(generator.prompts)
    plain = pipeline([{"type": "dense", "top_k": 6}], config).search(QUESTION, collection, top_k=6)
    rerank = {"type": "llm-rerank", "method": "listwise", "window": 3, "step": 2}
    result = pipeline([{"type": "dense", "top_k": 6}, rerank], config).search(QUESTION, collection, top_k=6)

    incoming = [h.chunk.id for h in plain.hits]
    # windows [4-6] -> 6,5,4; then [2-4] of 1,2,3,6,5,4 -> 6,3,2; then [1-2] of 1,6 -> 6,1
    assert [h.chunk.id for h in result.hits] == [incoming[i] for i in (5, 0, 2, 1, 4, 3)]
    assert len(generator.prompts) - before == 3
    assert any("passages 1-2: ignored number(s) out of range 1-2: 3" in n for n in entry(result, "llm-rerank").notes)


def test_pointwise_orders_by_rating(collection: Collection) -> None:
    config = scripted(replies={"CBS broadcast": "Relevance: 9/10", "Arizona Cardinals": "7"}, default="2")
    incoming, result = dense_then({"type": "llm-rerank"}, config, collection)

    texts = [h.chunk.text for h in result.hits]
    assert "CBS broadcast" in texts[0] and "Arizona Cardinals" in texts[1]
    assert [h.score for h in result.hits] == [9.0, 7.0, 2.0, 2.0, 2.0]
    rest = [h.chunk.id for h in result.hits[2:]]
    assert rest == [i for i in incoming if i in rest]  # ties keep the incoming order
    assert len(entry(result, "llm-rerank").calls) == 5


def test_pointwise_batches_read_numbered_ratings(collection: Collection) -> None:
    config = scripted(default="[1]: 1\n[2]: 3\n[3]: 8")
    incoming, result = dense_then({"type": "llm-rerank", "batch_size": 3}, config, collection)
    # passages 1-3 rated 1, 3, 8; passages 4-5 (a second call) rated 1, 3
    assert [h.chunk.id for h in result.hits] == [incoming[i] for i in (2, 1, 4, 0, 3)]
    assert len(entry(result, "llm-rerank").calls) == 2


@pytest.mark.parametrize(
    ("script", "note"),
    [
        ({"replies": {"Arizona Cardinals": "very relevant!"}, "default": "5"}, "no 0-10 rating for passage 2"),
        ({"default": "7", "delay": 30.0}, "did not answer within 0.2 s"),
    ],
    ids=["garbage", "timeout"],
)
def test_pointwise_failure_keeps_the_incoming_order(collection: Collection, script: dict[str, Any], note: str) -> None:
    incoming, result = dense_then({"type": "llm-rerank", "timeout": 0.2}, scripted(**script), collection)
    assert [h.chunk.id for h in result.hits] == incoming
    assert all("llm-rerank" not in h.scores for h in result.hits)
    notes = entry(result, "llm-rerank").notes
    assert any(note in n and "kept the incoming order" in n for n in notes), notes


# -- the real local model -------------------------------------------------------------------------


@pytest.mark.slow
def test_multi_query_with_the_packaged_local_model(collection: Collection) -> None:
    stages = [{"type": "multi-query", "n": 2, "max_tokens": 64, "timeout": 120}, {"type": "dense", "top_k": 5}, "rrf"]
    search = QueryPipeline.from_configs(stages, context=PipelineContext({"type": "transformers"}))
    result = search.search(QUESTION, collection)

    trace = entry(result, "multi-query")
    assert trace.error is None, trace.error
    assert len(trace.calls) == 1 and trace.calls[0].completion_tokens > 0
    rewrites = [q for q in result.queries if q.origin == "multi-query"]
    print("SmolLM2 wrote:", [q.text for q in rewrites], trace.notes)
    # whatever the tiny model wrote is in the trace: either rewrites or a note saying what came back
    assert rewrites or any("no usable query" in note for note in trace.notes)
    assert trace.queries == [q.to_dict() for q in result.queries]
    assert sources(result)[0] == SUPER_BOWL
