"""ragkit connector for DeepEval: its RAG metrics and G-Eval as ragkit ``metric`` components.

* :mod:`ragkit_deepeval.metrics`: ``deepeval_answer_relevancy``,
  ``deepeval_faithfulness``, ``deepeval_contextual_precision``,
  ``deepeval_contextual_recall``, ``deepeval_hallucination`` and
  ``deepeval_geval`` (a criterion written in the suite), judged by any
  ragkit generator through the same judge as the ragas metrics (cache,
  retries, timeout; a failed judgement is a failed sample with its reason,
  never NaN);
* :mod:`ragkit_deepeval.testing`: ``FakeDeepEvalJudgeServer``, a fake
  OpenAI-compatible judge for tests.

Importing this package does not import deepeval; scoring does, after
switching off its telemetry (``DEEPEVAL_TELEMETRY_OPT_OUT``), its ``.env``
loading and its writes to disk, each with ``os.environ.setdefault``.
"""

from __future__ import annotations

import os

for _name, _value in (
    ("DEEPEVAL_TELEMETRY_OPT_OUT", "YES"),
    ("DEEPEVAL_DISABLE_DOTENV", "1"),
    ("DEEPEVAL_FILE_SYSTEM", "READ_ONLY"),
    ("DEEPEVAL_UPDATE_WARNING_OPT_IN", "0"),
    ("CONFIDENT_TRACE_SAMPLE_RATE", "0"),
    ("CONFIDENT_TRACE_VERBOSE", "0"),
):
    os.environ.setdefault(_name, _value)

from ragkit_deepeval.metrics import (  # noqa: E402  (after the environment is set)
    AnswerRelevancyMetric,
    ContextualPrecisionMetric,
    ContextualRecallMetric,
    DeepEvalMetric,
    FaithfulnessMetric,
    GEvalMetric,
    HallucinationMetric,
)

__all__ = [
    "AnswerRelevancyMetric",
    "ContextualPrecisionMetric",
    "ContextualRecallMetric",
    "DeepEvalMetric",
    "FaithfulnessMetric",
    "GEvalMetric",
    "HallucinationMetric",
]
