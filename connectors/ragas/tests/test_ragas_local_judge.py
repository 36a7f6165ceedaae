"""Faithfulness and context recall end to end with the real local model as the judge.

The judge is the packaged SmolLM2-135M-Instruct (``{"type": "transformers"}``,
offline). It is far too small to judge well and often writes JSON that does
not fit ragas' schemas: that is the point. Every sample must come back either
scored in [0, 1] or failed with a reason, never NaN, and the run must not
crash. A warm cache then replays the run without touching the model.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from ragkit_ragas import ContextRecallMetric, FaithfulnessMetric

SAMPLES = [
    {
        "id": "paris",
        "question": "What is the capital of France?",
        "answers": ["Paris is the capital of France."],
        "response": "The capital of France is Paris.",
        "contexts": ["Paris is the capital and largest city of France."],
    },
    {
        "id": "plague",
        "question": "When did the Black Death reach Europe?",
        "answers": ["The Black Death reached Europe in 1347."],
        "response": "It reached Europe in 1347.",
        "contexts": ["The Black Death arrived in Europe in 1347, carried by merchant ships."],
    },
]

JUDGE = {"type": "transformers"}
OPTIONS = {"max_tokens": 64, "retries": 0, "timeout": 120.0, "concurrency": 1}


def check(results: list) -> None:
    assert len(results) == len(SAMPLES)
    for result in results:
        if result.value is None:
            assert isinstance(result.error, str) and result.error.strip(), result
        else:
            assert not math.isnan(result.value)
            assert 0.0 <= result.value <= 1.0
            assert result.error is None


@pytest.mark.parametrize(
    "metric_class", [FaithfulnessMetric, ContextRecallMetric], ids=["faithfulness", "context_recall"]
)
def test_local_model_judge_scores_or_fails_every_sample_with_a_reason(metric_class, tmp_path: Path):
    metric = metric_class(judge=JUDGE, cache_dir=str(tmp_path), **OPTIONS)
    started = time.perf_counter()
    first = metric.score_many(SAMPLES)
    elapsed = time.perf_counter() - started
    print(f"\n{metric.name} with the local judge ({elapsed:.1f} s):")
    for result in first:
        print(" ", json.dumps({"value": result.value, "error": result.error, "details": result.details})[:600])
    check(first)
    calls = metric.judge().stats.calls
    assert calls >= len(SAMPLES)

    # a warm cache: no generator call, identical outcome
    again = metric_class(judge=JUDGE, cache_dir=str(tmp_path), **OPTIONS)
    second = again.score_many(SAMPLES)
    assert again.judge().stats.calls == 0
    assert [(r.value, r.error) for r in second] == [(r.value, r.error) for r in first]
