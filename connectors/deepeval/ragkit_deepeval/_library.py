"""The one module that imports DeepEval: its judge interface over a ragkit judge, its metrics, its test case.

Importing this module imports ``deepeval`` (after :func:`quiet_deepeval`
has switched off its telemetry, its ``.env`` loading and its writes to
disk). Everything else in ``ragkit_deepeval`` reaches DeepEval through the
functions here, imported lazily.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

QUIET_ENV: dict[str, str] = {
    # no PostHog events, no migration of key files into a .deepeval folder
    "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
    # no reading of .env / .env.local files from the working folder into os.environ
    "DEEPEVAL_DISABLE_DOTENV": "1",
    # no test-run files, prompt caches or .deepeval folders written to the working folder
    "DEEPEVAL_FILE_SYSTEM": "READ_ONLY",
    # no check of PyPI for a newer deepeval
    "DEEPEVAL_UPDATE_WARNING_OPT_IN": "0",
    # no traces of the judge's calls kept for Confident AI, and no logging about them
    "CONFIDENT_TRACE_SAMPLE_RATE": "0",
    "CONFIDENT_TRACE_VERBOSE": "0",
}
"""Environment variables set (with ``setdefault``: a user's own choice wins) before DeepEval is imported."""


def quiet_deepeval() -> None:
    """Switch off DeepEval's telemetry, ``.env`` loading, disk writes and update checks (setdefault)."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


quiet_deepeval()

# deepeval prints a notice about the read-only file system when it is imported: not for ragkit's users
with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
    warnings.simplefilter("ignore", DeprecationWarning)
    import deepeval.metrics as deepeval_metrics
    from deepeval.models import DeepEvalBaseLLM
    from deepeval.test_case import LLMTestCase, SingleTurnParams

# their notices that READ_ONLY (set above) skips DeepEval's disk caches are expected, not news
for _logger in ("deepeval.prompt.prompt", "deepeval.test_run.cache"):
    logging.getLogger(_logger).setLevel(logging.ERROR)

from ragkit_ragas._sync import run_sync  # noqa: E402  (after the environment is set)
from ragkit_ragas.judge import Judge  # noqa: E402

from ragkit.generation.base import Message  # noqa: E402

SCHEMA_MARKER = "JSON Schema:"
"""Precedes the answer's JSON Schema, appended to every structured DeepEval prompt."""

METRIC_CLASSES: dict[str, str] = {
    "answer_relevancy": "AnswerRelevancyMetric",
    "faithfulness": "FaithfulnessMetric",
    "contextual_precision": "ContextualPrecisionMetric",
    "contextual_recall": "ContextualRecallMetric",
    "hallucination": "HallucinationMetric",
    "geval": "GEval",
}
"""ragkit's short name -> the DeepEval metric class."""

EVALUATION_PARAMS: dict[str, str] = {
    "input": "INPUT",
    "actual_output": "ACTUAL_OUTPUT",
    "expected_output": "EXPECTED_OUTPUT",
    "retrieval_context": "RETRIEVAL_CONTEXT",
    "context": "CONTEXT",
}
"""G-Eval's ``evaluation_params`` by the names a suite uses (DeepEval's ``LLMTestCase`` field names)."""


class RagkitDeepEvalLLM(DeepEvalBaseLLM):  # type: ignore[misc,no-untyped-call,unused-ignore]
    """DeepEval's model interface over a ragkit :class:`~ragkit_ragas.judge.Judge`.

    A structured request (DeepEval passes a pydantic ``schema``) goes to
    :meth:`Judge.structured` with the schema's JSON Schema appended to the
    prompt: the answer is read leniently (code fences, single quotes,
    trailing commas, a bare list), an unusable answer is sent back with the
    parse error, up to the judge's ``retries``, and a
    :class:`~ragkit_ragas.judge.JudgeError` ends the sample when they run
    out. Every call goes through the judge's cache and timeout.
    """

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        super().__init__(judge.model_name)

    def load_model(self, *args: Any, **kwargs: Any) -> Judge:
        """The ragkit judge (already built)."""
        return self.judge

    def get_model_name(self, *args: Any, **kwargs: Any) -> str:
        """The judge model's name."""
        return f"ragkit:{self.judge.model_name}"

    def supports_log_probs(self) -> bool:
        """No: G-Eval then asks for the score as text."""
        return False

    async def a_generate(self, prompt: str, schema: type[BaseModel] | None = None, **kwargs: Any) -> Any:
        """The judge's answer: an instance of ``schema`` when one is given, else its text."""
        if schema is None:
            generation = await self.judge.ask([Message("user", str(prompt))])
            return generation.text
        described = f"{prompt}\n\n{SCHEMA_MARKER} {json.dumps(schema.model_json_schema(), ensure_ascii=False)}"
        return await self.judge.structured(described, schema)

    def generate(self, prompt: str, schema: type[BaseModel] | None = None, **kwargs: Any) -> Any:
        """Blocking twin of :meth:`a_generate`."""
        return run_sync(self.a_generate(prompt, schema, **kwargs))


def make_metric(kind: str, model: RagkitDeepEvalLLM, options: Mapping[str, Any]) -> Any:
    """A fresh DeepEval metric object (they keep per-sample state, so one per sample)."""
    cls = getattr(deepeval_metrics, METRIC_CLASSES[kind])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return cls(model=model, async_mode=True, **options)


def geval_params(names: Sequence[str]) -> list[Any]:
    """DeepEval's ``SingleTurnParams`` for G-Eval's ``evaluation_params`` names."""
    return [getattr(SingleTurnParams, EVALUATION_PARAMS[name]) for name in names]


def test_case(
    question: str,
    response: str | None,
    expected: str | None,
    retrieval_context: list[str] | None,
    context: list[str] | None,
) -> Any:
    """DeepEval's ``LLMTestCase`` for one sample."""
    return LLMTestCase(
        input=question,
        actual_output=response,
        expected_output=expected,
        retrieval_context=list(retrieval_context) if retrieval_context is not None else None,  # type: ignore[arg-type,unused-ignore]
        context=context,
    )


def metric_errors() -> tuple[type[BaseException], ...]:
    """DeepEval's own exception types for a test case a metric cannot score (missing fields ...)."""
    from deepeval.errors import MissingTestCaseParamsError

    return (MissingTestCaseParamsError,)
