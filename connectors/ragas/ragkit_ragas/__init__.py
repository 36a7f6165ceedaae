"""ragkit connector for ragas: LLM-judged and string metrics, and test-set generation, on ragkit components.

* :mod:`ragkit_ragas.metrics`: ragas metrics as ragkit ``metric`` components
  (``faithfulness``, ``answer_relevancy``, ``context_precision``,
  ``context_recall``, any ragas metric by name as ``ragas``, and the
  string metrics ``non_llm_context_recall``, ``non_llm_context_precision``,
  ``string_similarity``, ``rouge``, ``bleu``), judged by any ragkit
  generator with a disk cache, retries, timeouts and a concurrency bound;
* :mod:`ragkit_ragas.llm`: ragas' LLM and embeddings interfaces over a
  ragkit generator and embedder (imports ragas);
* :mod:`ragkit_ragas.testset`: questions with verified source spans from a
  folder of documents, also the ``testset_generator`` component ``ragas``
  that ``ragkit eval testset`` finds through the registry;
* :mod:`ragkit_ragas.testing`: ``FakeOpenAIJudgeServer``, a fake
  OpenAI-compatible judge for tests.

Importing this package does not import ragas; scoring does.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

from ragkit_ragas.judge import Judge, JudgeError, JudgeTally
from ragkit_ragas.metrics import (
    AnswerRelevancyMetric,
    BleuMetric,
    ContextPrecisionMetric,
    ContextRecallMetric,
    FaithfulnessMetric,
    GenericRagasMetric,
    NonLLMContextPrecisionMetric,
    NonLLMContextRecallMetric,
    RagasLLMMetric,
    RagasMetric,
    RougeMetric,
    StringSimilarityMetric,
    ragas_metric_classes,
    resolve_ragas_metric,
)
from ragkit_ragas.sample import MetricScore, ProgressCallback, RagasSample
from ragkit_ragas.testset import TestsetReport, VerifiedTestsetGenerator, generate_testset, verify_testset

__all__ = [
    "AnswerRelevancyMetric",
    "BleuMetric",
    "ContextPrecisionMetric",
    "ContextRecallMetric",
    "FaithfulnessMetric",
    "GenericRagasMetric",
    "Judge",
    "JudgeError",
    "JudgeTally",
    "MetricScore",
    "NonLLMContextPrecisionMetric",
    "NonLLMContextRecallMetric",
    "ProgressCallback",
    "RagasLLMMetric",
    "RagasMetric",
    "RagasSample",
    "RougeMetric",
    "StringSimilarityMetric",
    "TestsetReport",
    "VerifiedTestsetGenerator",
    "generate_testset",
    "ragas_metric_classes",
    "resolve_ragas_metric",
    "verify_testset",
]
