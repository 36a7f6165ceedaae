"""A DeepEval metric judged by the real local model: a score or a clear failure, never NaN.

The judge is the packaged SmolLM2-135M-Instruct (``{"type": "transformers"}``,
offline, far too small to judge well): its JSON often does not fit DeepEval's
schemas. One sample, short judgements, no retries: the sample must come back
scored in [0, 1] or failed with a reason naming the judge, and a warm cache
must replay what the judge answered without the model.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

if importlib.util.find_spec("deepeval") is None:  # (not imported here: ragkit_deepeval quiets it first)
    pytest.skip("deepeval is not installed here: run these tests with .venv-deepeval", allow_module_level=True)

from ragkit_deepeval import AnswerRelevancyMetric

SAMPLE = {
    "id": "paris",
    "question": "What is the capital of France?",
    "answers": ["Paris is the capital of France."],
    "response": "The capital of France is Paris.",
    "contexts": ["Paris is the capital and largest city of France."],
}
OPTIONS = {"max_tokens": 48, "retries": 0, "timeout": None, "concurrency": 1, "include_reason": False}


def test_local_model_judge_gives_a_score_or_a_reason(tmp_path: Path) -> None:
    metric = AnswerRelevancyMetric(judge={"type": "transformers"}, cache_dir=str(tmp_path), **OPTIONS)
    result = metric.score(SAMPLE)
    print("\nlocal judge:", json.dumps({"value": result.value, "error": result.error, "details": result.details})[:800])
    if result.value is None:
        assert result.error and "judge" in result.error, result
    else:
        assert not math.isnan(result.value) and 0.0 <= result.value <= 1.0
        assert result.error is None
    assert metric.judge().stats.calls >= 1
    if result.details.get("failure") not in (None, "unparsable"):
        return  # a failed call (not an answer) is never cached: nothing to replay

    again = AnswerRelevancyMetric(judge={"type": "transformers"}, cache_dir=str(tmp_path), **OPTIONS)
    replay = again.score(SAMPLE)
    assert again.judge().stats.calls == 0
    assert (replay.value, replay.error) == (result.value, result.error)
