"""ragas metrics judged through the real ``openai`` generator against ``FakeOpenAIJudgeServer``.

``FakeOpenAIJudgeServer`` (``ragkit_ragas.testing``) is a **fake**: a real
HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol, with
no model behind it. It answers each ragas prompt with JSON shaped by the
schema in the prompt (two items per list, integer verdicts 1 then 0, so
faithfulness and context recall come out at 0.5), and can fail every n-th
request with a 500, answer slowly, or answer with text that is not JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ragkit_ragas import (
    ContextRecallMetric,
    FaithfulnessMetric,
    GenericRagasMetric,
    MetricScore,
    RagasSample,
)
from ragkit_ragas.judge import REASK_PROMPT
from ragkit_ragas.testing import FakeOpenAIJudgeServer, answer_for_prompt

from ragkit.errors import ConfigError
from ragkit.registry import build

SAMPLES = [
    {
        "id": f"q{i}",
        "question": f"Where is landmark number {i}?",
        "answers": [f"Landmark {i} is in Paris."],
        "response": f"Landmark {i} stands in Paris, France.",
        "contexts": [f"Landmark {i} is a tower in Paris.", "Paris is the capital of France."],
        "context_ids": [f"c{i}a", f"c{i}b"],
    }
    for i in range(6)
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIJudgeServer]:
    with FakeOpenAIJudgeServer() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAIJudgeServer) -> FakeOpenAIJudgeServer:
    server.fail_every = None
    server.delay = 0.0
    server.garbage = False
    server.array_items = 2
    server.wait_idle()
    server.reset()
    return server


def judge_config(server: FakeOpenAIJudgeServer, **options: Any) -> dict[str, Any]:
    return {"type": "openai", "model": "fake-judge", "base_url": server.url, "max_retries": 0, "timeout": 10, **options}


def values(results: list[Any]) -> list[float | None]:
    return [r.value for r in results]


def assert_scored_or_failed(results: list[Any]) -> None:
    for result in results:
        if result.value is None:
            assert result.error, result
        else:
            assert not math.isnan(result.value)
            assert 0.0 <= result.value <= 1.0


# -- plain scoring --------------------------------------------------------------------------------


def test_faithfulness_and_context_recall_score_through_the_fake(fake):
    faithfulness = FaithfulnessMetric(judge=judge_config(fake), retries=0)
    recall = ContextRecallMetric(judge=judge_config(fake), retries=0)
    f_results = faithfulness.score_many(SAMPLES[:2])
    r_results = recall.score_many(SAMPLES[:2])
    assert values(f_results) == [0.5, 0.5]
    assert values(r_results) == [0.5, 0.5]
    assert all(r.error is None for r in f_results + r_results)
    # faithfulness: statements, then verdicts; context recall: one classification call
    assert f_results[0].details["judge_calls"] == 2
    assert r_results[0].details["judge_calls"] == 1
    assert fake.requests == 6
    assert f_results[0].details["sample_id"] == "q0"


def test_the_fake_answers_with_schema_shaped_json():
    schema = {
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/I"}}},
        "$defs": {"I": {"type": "object", "properties": {"s": {"type": "string"}, "v": {"type": "integer"}}}},
    }
    prompt = f"Do it.\nPlease answer as specified in JSON Schema:\n{json.dumps(schema)}Do not use single quotes"
    assert answer_for_prompt(prompt) == {"items": [{"s": "statement 1", "v": 1}, {"s": "statement 2", "v": 0}]}
    assert answer_for_prompt("no schema here") == {}


def test_metrics_come_from_the_registry(fake):
    metric = build("metric", {"type": "faithfulness", "judge": judge_config(fake)})
    assert isinstance(metric, FaithfulnessMetric)
    assert metric.name == "faithfulness"
    assert set(metric.needs) == {"retrieval", "answer", "judge"}
    assert build("metric", {"type": "context_recall", "judge": judge_config(fake)}).needs == {"retrieval", "judge"}
    assert build("metric", {"type": "answer_relevancy", "judge": judge_config(fake)}).needs == {"answer", "judge"}
    assert build("metric", {"type": "context_precision", "judge": judge_config(fake)}).name == "context_precision"
    config = metric.to_config()
    assert config["type"] == "faithfulness" and config["judge"]["base_url"] == fake.url


def test_any_ragas_metric_by_name(fake):
    metric = build("metric", {"type": "ragas", "name": "NoiseSensitivity", "judge": judge_config(fake), "retries": 0})
    assert isinstance(metric, GenericRagasMetric)
    assert metric.name == "noise_sensitivity"
    assert set(metric.needs) == {"retrieval", "answer", "judge"}
    results = metric.score_many(SAMPLES[:2])
    assert_scored_or_failed(results)
    assert fake.requests > 0
    # snake case works too, and a metric without an LLM drops the judge from its needs
    exact = build("metric", {"type": "ragas", "name": "exact_match", "judge": judge_config(fake)})
    assert set(exact.needs) == {"answer"}
    scored = exact.score_many([{**SAMPLES[0], "response": SAMPLES[0]["answers"][0]}, SAMPLES[1]])
    assert values(scored) == [1.0, 0.0]


def test_an_unknown_ragas_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="no ragas metric named 'NoSuchMetric'.*Faithfulness"):
        build("metric", {"type": "ragas", "name": "NoSuchMetric"})


def test_bad_options_fail_when_the_metric_is_built(fake):
    with pytest.raises(ConfigError, match="retries"):
        FaithfulnessMetric(judge=judge_config(fake), retries=-1)
    with pytest.raises(ConfigError, match="concurrency"):
        FaithfulnessMetric(judge=judge_config(fake), concurrency=0)
    with pytest.raises(ConfigError, match="unknown option"):
        build("metric", {"type": "faithfulness", "judge": judge_config(fake), "colour": "blue"})


def test_a_sample_without_the_needed_input_is_failed_with_the_reason(fake):
    metric = FaithfulnessMetric(judge=judge_config(fake), retries=0)
    retrieval_only = {key: value for key, value in SAMPLES[0].items() if key != "response"}
    result = metric.score(retrieval_only)
    assert result.value is None
    assert "response" in result.error
    assert fake.requests == 0


# -- failures ---------------------------------------------------------------------------------------


def test_every_third_call_failing_without_retries_fails_those_samples_only(fake):
    fake.fail_every = 3
    metric = ContextRecallMetric(judge=judge_config(fake), retries=0, concurrency=1)
    progress: list[tuple[int, int, int]] = []
    results = metric.score_many(SAMPLES, progress=lambda done, total, errors: progress.append((done, total, errors)))
    assert fake.requests == 6 and fake.failed == 2
    assert values(results) == [0.5, 0.5, None, 0.5, 0.5, None]
    for failed in (results[2], results[5]):
        assert "500" in failed.error
        assert failed.details["failure"] == "error"
    assert progress[-1] == (6, 6, 2)
    assert [p[0] for p in progress] == [1, 2, 3, 4, 5, 6]


def test_retries_recover_from_failed_calls(fake):
    fake.fail_every = 3
    metric = ContextRecallMetric(judge=judge_config(fake), retries=1, concurrency=1, backoff=0.01)
    results = metric.score_many(SAMPLES)
    assert values(results) == [0.5] * 6
    assert fake.failed >= 2
    assert sum(r.details["judge_retries"] for r in results) == fake.failed


def test_the_core_progress_convention_counts_samples(fake):
    metric = ContextRecallMetric(judge=judge_config(fake), retries=0)
    finished: list[int] = []
    metric.score_many(SAMPLES[:3], progress=finished.append)
    assert finished == [1, 1, 1]


def test_a_slow_judge_times_out_and_the_sample_is_failed(fake):
    fake.delay = 1.5
    metric = ContextRecallMetric(judge=judge_config(fake), retries=0, timeout=0.3)
    results = metric.score_many(SAMPLES[:2])
    assert values(results) == [None, None]
    for result in results:
        assert "timeout" in result.error and "0.3 s" in result.error
        assert result.details["failure"] == "timeout"


def test_unparsable_answers_are_asked_again_then_fail_with_the_reason(fake):
    fake.garbage = True
    metric = ContextRecallMetric(judge=judge_config(fake), retries=1)
    results = metric.score_many(SAMPLES[:2])
    assert values(results) == [None, None]
    for result in results:
        assert result.details["failure"] == "unparsable"
        assert "no usable ContextRecallOutput after 2 attempts" in result.error
        assert "I think the answer is fine." in result.error
    assert fake.requests == 4  # one re-ask per sample
    reask = fake.bodies[-1]["messages"][-1]["content"]
    assert reask.startswith(REASK_PROMPT.split("{problem}")[0])


def test_a_nan_from_ragas_becomes_a_failed_sample(fake):
    fake.array_items = 0  # no statements: ragas' faithfulness is NaN
    metric = FaithfulnessMetric(judge=judge_config(fake), retries=0)
    result = metric.score(SAMPLES[0])
    assert result.value is None
    assert "NaN" in result.error
    assert result.details["failure"] == "nan"


def test_a_failing_progress_callback_does_not_stop_the_run(fake):
    def broken(count: int) -> None:
        raise RuntimeError("display gone")

    metric = ContextRecallMetric(judge=judge_config(fake), retries=0)
    assert values(metric.score_many(SAMPLES[:2], progress=broken)) == [0.5, 0.5]


# -- cache ------------------------------------------------------------------------------------------


def test_a_warm_cache_makes_no_judge_calls_and_gives_identical_scores(fake, tmp_path: Path):
    cache_dir = str(tmp_path / "cache")
    first = FaithfulnessMetric(judge=judge_config(fake), cache_dir=cache_dir).score_many(SAMPLES)
    assert fake.requests == 12
    fake.reset()
    second_metric = FaithfulnessMetric(judge=judge_config(fake), cache_dir=cache_dir)
    second = second_metric.score_many(SAMPLES)
    assert fake.requests == 0
    assert values(second) == values(first) == [0.5] * 6
    assert all(r.details["judge_calls"] == 0 and r.details["judge_cache_hits"] == 2 for r in second)
    assert (tmp_path / "cache" / "ragas-judge-cache.sqlite3").is_file()
    second_metric.close()


def test_failed_calls_are_not_cached_and_a_rerun_asks_only_for_them(fake, tmp_path: Path):
    cache_dir = str(tmp_path / "cache")
    fake.fail_every = 3
    first = ContextRecallMetric(judge=judge_config(fake), cache_dir=cache_dir, retries=0, concurrency=1)
    assert values(first.score_many(SAMPLES)) == [0.5, 0.5, None, 0.5, 0.5, None]
    fake.fail_every = None
    fake.reset()
    again = ContextRecallMetric(judge=judge_config(fake), cache_dir=cache_dir, retries=0, concurrency=1)
    assert values(again.score_many(SAMPLES)) == [0.5] * 6
    assert fake.requests == 2


def test_the_cache_key_follows_the_judge_options(fake, tmp_path: Path):
    cache_dir = str(tmp_path / "cache")
    ContextRecallMetric(judge=judge_config(fake), cache_dir=cache_dir).score_many(SAMPLES[:2])
    assert fake.requests == 2
    ContextRecallMetric(judge=judge_config(fake, timeout=20), cache_dir=cache_dir).score_many(SAMPLES[:2])
    assert fake.requests == 2  # a transport option: same answers
    ContextRecallMetric(judge=judge_config(fake), cache_dir=cache_dir, max_tokens=100).score_many(SAMPLES[:2])
    assert fake.requests == 4  # an option that changes the answer: asked again
    ContextRecallMetric(judge=judge_config(fake, model="other-judge"), cache_dir=cache_dir).score_many(SAMPLES[:2])
    assert fake.requests == 6


# -- concurrency ------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
def test_judge_calls_in_flight_never_exceed_the_concurrency(fake, concurrency: int):
    fake.delay = 0.15
    metric = FaithfulnessMetric(judge=judge_config(fake), concurrency=concurrency, retries=0)
    results = metric.score_many(SAMPLES)
    assert values(results) == [0.5] * 6
    assert fake.max_in_flight <= concurrency
    assert fake.max_in_flight == concurrency  # and the bound is actually reached


def test_score_works_inside_a_running_event_loop(fake):
    metric = ContextRecallMetric(judge=judge_config(fake), retries=0)

    async def inside() -> Any:
        sync = metric.score(SAMPLES[0])  # runs on a worker thread, not on this loop
        awaited = await metric.ascore(SAMPLES[1])
        return sync, awaited

    sync, awaited = asyncio.run(inside())
    assert (sync.value, awaited.value) == (0.5, 0.5)


def test_results_have_the_metric_result_fields(fake):
    result = ContextRecallMetric(judge=judge_config(fake)).score(RagasSample.coerce(SAMPLES[0]))
    assert {"value", "error", "details"} <= set(dir(result))
    assert MetricScore(float("nan")).error is not None
