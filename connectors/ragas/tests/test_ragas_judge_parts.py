"""The judge's parts without a server: parsing free text, the cache, sample coercion, the ragas LLM wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel
from ragkit_ragas.cache import JudgeCache, cache_key
from ragkit_ragas.judge import Judge, JudgeError
from ragkit_ragas.parse import UnparsableOutput, parse_structured
from ragkit_ragas.sample import MetricScore, RagasSample

from ragkit.generation.base import BaseGenerator, GenerationDelta, GenerationOptions, Message


class Statements(BaseModel):
    statements: list[str]


class Verdict(BaseModel):
    statement: str
    verdict: int


class Verdicts(BaseModel):
    statements: list[Verdict]


class ScriptedGenerator(BaseGenerator):
    """A test generator that answers from a script (one reply per call, the last repeated)."""

    def __init__(self, replies: list[str] | None = None) -> None:
        self.replies = list(replies or ['{"statements": ["a"]}'])
        self.calls: list[list[Message]] = []

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        self.calls.append(list(messages))
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        if reply == "RAISE":
            raise RuntimeError("model crashed")
        yield GenerationDelta(text=reply)
        yield GenerationDelta(finish_reason="stop")


# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"statements": ["a", "b"]}',
        'Sure! Here it is:\n```json\n{"statements": ["a", "b"]}\n```\nHope that helps.',
        "{'statements': ['a', 'b']}",
        '{"statements": ["a", "b",],}',
        '["a", "b"]',
        'Output: {"output": {"statements": ["a", "b"]}}',
        '{"statements": ["a", "b"',  # cut off at max_tokens
    ],
)
def test_parse_structured_reads_what_small_models_write(text):
    assert parse_structured(text, Statements).statements == ["a", "b"]


def test_parse_structured_repairs_python_literals():
    parsed = parse_structured('{"statements": [{"statement": "s", "verdict": True}]}', Verdicts)
    assert parsed.statements[0].verdict == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I cannot answer that.", "no JSON"),
        ('{"statement": "x"}', "does not fit the schema"),
    ],
)
def test_parse_structured_says_why_it_failed(text, reason):
    with pytest.raises(UnparsableOutput, match=reason):
        parse_structured(text, Verdicts)


# -- the judge ----------------------------------------------------------------------------------------


def test_the_judge_reasks_with_the_parse_error_and_counts():
    generator = ScriptedGenerator(["no json here", '{"statements": ["ok"]}'])
    judge = Judge(generator, retries=1)

    async def run() -> Any:
        with Judge.tally() as tally:
            result = await judge.structured("Give statements. JSON Schema: {}", Statements)
        return result, tally

    result, tally = asyncio.run(run())
    assert result.statements == ["ok"]
    assert tally.calls == 2 and tally.retries == 1
    second = generator.calls[1]
    assert [m.role for m in second] == ["system", "user", "assistant", "user"]
    assert second[2].content == "no json here" and "no JSON" in second[3].content


def test_the_judge_gives_up_after_the_retries():
    judge = Judge(ScriptedGenerator(["RAISE"]), retries=2, backoff=0.001)
    with pytest.raises(JudgeError, match=r"model crashed \(after 3 attempts\)") as caught:
        asyncio.run(judge.structured("p", Statements))
    assert caught.value.kind == "error"
    assert judge.stats.calls == 3


def test_the_judge_caches_answers_not_failures(tmp_path: Path):
    cache = JudgeCache(tmp_path)
    generator = ScriptedGenerator(['{"statements": ["cached"]}'])
    judge = Judge(generator, cache=cache)
    first = asyncio.run(judge.structured("p", Statements))
    again = asyncio.run(Judge(generator, cache=JudgeCache(tmp_path)).structured("p", Statements))
    assert first == again
    assert len(generator.calls) == 1
    failing = Judge(ScriptedGenerator(["RAISE"]), cache=cache, retries=0)
    with pytest.raises(JudgeError):
        asyncio.run(failing.structured("other prompt", Statements))
    assert len(cache) == 1


def test_cache_keys_differ_by_what_decides_the_answer():
    messages = [{"role": "user", "content": "p"}]
    base = cache_key("judge-a", messages, {"max_tokens": 10})
    assert base == cache_key("judge-a", messages, {"max_tokens": 10})
    assert base != cache_key("judge-b", messages, {"max_tokens": 10})
    assert base != cache_key("judge-a", [{"role": "user", "content": "q"}], {"max_tokens": 10})
    assert base != cache_key("judge-a", messages, {"max_tokens": 11})
    assert base != cache_key("judge-a", messages, {"max_tokens": 10}, occurrence=1)


def test_a_cache_in_an_unwritable_place_is_switched_off(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = JudgeCache(blocker / "sub")
    assert not cache.enabled
    assert cache.get("k") is None
    cache.put("k", "m", "t", "stop")  # no error


def test_sampled_repeats_get_their_own_cache_entries(tmp_path: Path):
    generator = ScriptedGenerator(['{"statements": ["one"]}', '{"statements": ["two"]}'])
    judge = Judge(generator, cache=JudgeCache(tmp_path), temperature=0.7)

    async def twice() -> list[Any]:
        with Judge.tally():
            return [await judge.structured("p", Statements), await judge.structured("p", Statements)]

    assert [r.statements for r in asyncio.run(twice())] == [["one"], ["two"]]
    assert [r.statements for r in asyncio.run(twice())] == [["one"], ["two"]]  # replayed from the cache
    assert len(generator.calls) == 2


# -- the ragas LLM and embeddings --------------------------------------------------------------------


def test_the_ragas_llm_is_what_ragas_collections_accept():
    from ragas.llms.base import InstructorBaseRagasLLM
    from ragas.metrics.collections import Faithfulness
    from ragkit_ragas.llm import RagkitRagasLLM

    llm = RagkitRagasLLM(Judge(ScriptedGenerator(['{"statements": ["s"]}'])))
    assert isinstance(llm, InstructorBaseRagasLLM)
    Faithfulness(llm=llm)  # validates the LLM type
    assert llm.generate("p", Statements).statements == ["s"]
    assert asyncio.run(llm.agenerate("p", Statements)).statements == ["s"]


class TinyEmbedder:
    """A test embedder: a 3-d vector from letter counts."""

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([[t.count("a"), t.count("b"), 1.0] for t in texts], dtype=np.float32)

    async def aembed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_queries(texts)


def test_the_ragas_embeddings_wrap_a_ragkit_embedder():
    from ragas.embeddings.base import BaseRagasEmbedding
    from ragkit_ragas.llm import RagkitRagasEmbeddings

    embeddings = RagkitRagasEmbeddings(TinyEmbedder())
    assert isinstance(embeddings, BaseRagasEmbedding)
    assert embeddings.embed_text("aab") == [2.0, 1.0, 1.0]
    assert asyncio.run(embeddings.aembed_texts(["a", "b"])) == [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    assert embeddings.embed_documents(["b"]) == [[0.0, 1.0, 1.0]]


def test_answer_relevancy_with_a_scripted_judge_and_embedder():
    from ragkit_ragas import AnswerRelevancyMetric

    judge = ScriptedGenerator(['{"question": "What is aab?", "noncommittal": 0}'])
    metric = AnswerRelevancyMetric(judge=judge, embedder=TinyEmbedder(), options={"strictness": 2})
    result = metric.score({"question": "What is aab?", "response": "It is a word.", "answers": ["x"]})
    assert result.value == pytest.approx(1.0)
    assert len(judge.calls) == 1  # a greedy judge is asked a repeated prompt once


# -- samples -----------------------------------------------------------------------------------------------


def test_samples_come_from_mappings_and_evaluation_objects():
    from ragkit.schema import Chunk, Hit

    mapped = RagasSample.coerce({"question": "q", "answers": "a", "answer": "resp", "contexts": ["c"], "x": 1})
    assert (mapped.answers, mapped.response, mapped.extra) == (["a"], "resp", {"x": 1})

    question = SimpleNamespace(id="7", question="Who?", answers=["Ann"], metadata={"reference_contexts": ["gold"]})
    evaluated = SimpleNamespace(
        question=question, answer="Ann did.", hits=[Hit(Chunk("c1", "d", "s", "chunk text", 0, 10), 0.9)]
    )
    record = RagasSample.coerce(evaluated)
    assert (record.id, record.question, record.answers, record.response) == ("7", "Who?", ["Ann"], "Ann did.")
    assert (record.contexts, record.context_ids, record.reference_contexts) == (["chunk text"], ["c1"], ["gold"])


def test_metric_score_never_holds_nan():
    score = MetricScore(float("nan"))
    assert score.value is None and "non-finite" in score.error
    assert MetricScore(None).error == "no score"
    assert MetricScore(1).to_dict() == {"value": 1.0, "error": None, "details": {}}
