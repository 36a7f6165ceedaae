"""DeepEval metrics as ragkit ``metric`` components, judged by any ragkit generator.

A suite names them like any other metric (the registry finds them through
this package's entry points)::

    metrics:
      - deepeval_faithfulness
      - {name: deepeval_answer_relevancy, include_reason: false}
      - name: deepeval_geval
        criteria: "Is the answer correct and supported by the expected answer?"
        evaluation_params: [input, actual_output, expected_output]
        geval_name: correctness

They follow the evaluation core's ``Metric`` protocol (``name``, ``needs``,
``score``, ``score_many``) like the ragas metrics, and share their judge
(:class:`ragkit_ragas.judge.Judge`: the suite's ``judge`` generator, its
on-disk cache in the eval store's ``judge-cache/``, bounded retries with
backoff, a timeout and a concurrency bound). DeepEval's own code computes
every score from the judge's verdicts.

Scoring never raises for a sample and never gives NaN: a judgement the
judge cannot give in usable JSON after its ``retries``, a sample that lacks
what the metric reads, or a score that is not a finite number comes back as
``value=None`` with the reason in ``error``.

Sample fields reach DeepEval's ``LLMTestCase`` as: ``question`` → ``input``,
``response`` → ``actual_output``, the first of ``answers`` →
``expected_output``, ``contexts`` → ``retrieval_context``, and
``reference_contexts`` (gold passages; the retrieved ``contexts`` when the
sample has none) → ``context``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ragkit_ragas._sync import run_sync
from ragkit_ragas.judge import Judge, JudgeError, JudgeSetup
from ragkit_ragas.sample import RagasSample

from ragkit.component import Component
from ragkit.errors import ConfigError
from ragkit.evaluation.sample import MetricResult

# test-case field -> (ragkit sample field named in messages, what the metric then needs)
_FIELDS: dict[str, tuple[str, str | None]] = {
    "input": ("question", None),
    "actual_output": ("response", "answer"),
    "expected_output": ("answers", None),
    "retrieval_context": ("contexts", "retrieval"),
    "context": ("reference_contexts or contexts", "retrieval"),
}


class DeepEvalMetric(Component):
    """A DeepEval metric as a ragkit ``metric``: the adapter every metric here shares.

    Args:
        judge: The judge's generator config (``{"type": "transformers"}``,
            ``{"type": "openai", "model": ..., "base_url": ...}`` ...), or a
            built generator. ``None``: the packaged local SmolLM2.
        cache_dir: A folder for the judge's SQLite cache (the suite passes
            its ``judge-cache/``); ``None``: no cache.
        concurrency: Samples scored at once, and judge calls in flight.
        retries: Extra attempts per judge call after a failure, a timeout
            or an unparsable answer; then the sample is marked failed.
        timeout: Seconds one judge call may take.
        max_tokens: Length limit of each judgement.
        temperature: The judge's sampling temperature (``0``: reproducible).
        backoff: Seconds before the first retry of a failed call (doubling).
        include_reason: Ask the judge for DeepEval's explanation of the
            score (one more call per sample; kept in the result's details).
        options: Extra keyword arguments of the DeepEval metric's
            constructor (``threshold``, ``strict_mode``,
            ``truths_extraction_limit``, ``penalize_ambiguous_claims`` ...).

    """

    role: ClassVar[str] = "metric"
    kind: ClassVar[str] = ""
    """The DeepEval metric this class runs (a key of ``_library.METRIC_CLASSES``)."""
    fields: ClassVar[tuple[str, ...]] = ()
    """The ``LLMTestCase`` fields the metric reads."""
    per_k: ClassVar[bool] = False
    uses_embedder: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True
    needs: frozenset[str] = frozenset({"judge"})
    name: str = ""

    def __init__(
        self,
        judge: Mapping[str, Any] | Any | None = None,
        cache_dir: str | None = None,
        concurrency: int = 4,
        retries: int = 2,
        timeout: float | None = 120.0,
        max_tokens: int = 512,
        temperature: float = 0.0,
        backoff: float = 0.5,
        include_reason: bool = True,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = self.name or self.component_type or f"deepeval_{self.kind}"
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"metric {self.name!r}: 'concurrency' must be an integer of at least 1")
        if not isinstance(include_reason, bool):
            raise ConfigError(f"metric {self.name!r}: 'include_reason' must be true or false")
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"metric {self.name!r}: 'options' must be a mapping of DeepEval metric options")
        self.concurrency = concurrency
        self.include_reason = include_reason
        self.deepeval_options = dict(options or {})
        self._judge = JudgeSetup(
            self.name,
            judge,
            cache_dir,
            retries=retries,
            timeout=timeout,
            concurrency=concurrency,
            max_tokens=max_tokens,
            temperature=temperature,
            backoff=backoff,
        )
        self.needs = frozenset({"judge"} | {need for f in self.fields if (need := _FIELDS[f][1])})
        self._lock = threading.Lock()
        self._model: Any = None

    # -- the judge ----------------------------------------------------------------------------------------

    def judge(self) -> Judge:
        """The ragkit judge (its generator built on first use)."""
        return self._judge.judge()

    def deepeval_model(self) -> Any:
        """DeepEval's model object over the judge (imports deepeval on first use)."""
        with self._lock:
            if self._model is None:
                from ragkit_deepeval._library import RagkitDeepEvalLLM

                self._model = RagkitDeepEvalLLM(self.judge())
            return self._model

    def _metric_options(self) -> dict[str, Any]:
        return {"include_reason": self.include_reason, **self.deepeval_options}

    # -- scoring ------------------------------------------------------------------------------------------

    def score(self, sample: Any) -> MetricResult:
        """Score one sample (blocking)."""
        return self.score_many([sample])[0]

    def score_many(self, samples: Sequence[Any], progress: Any = None) -> list[MetricResult]:
        """Score samples (blocking): one result per sample, in order, never raising for a sample."""
        results: list[MetricResult] = run_sync(self.ascore_many(samples, progress))
        return results

    async def ascore(self, sample: Any) -> MetricResult:
        """Async twin of :meth:`score`."""
        return (await self.ascore_many([sample]))[0]

    async def ascore_many(self, samples: Sequence[Any], progress: Any = None) -> list[MetricResult]:
        """Async twin of :meth:`score_many`: at most ``concurrency`` samples in flight."""
        records = [RagasSample.coerce(s) for s in samples]
        try:
            model = await asyncio.to_thread(self.deepeval_model)  # imports deepeval off the loop
        except Exception as exc:
            reason = f"metric {self.name!r}: cannot set up DeepEval or its judge: {type(exc).__name__}: {exc}"
            results = [MetricResult.failed(reason) for _ in records]
            for _ in results:
                _report(progress)
            return results
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(record: RagasSample) -> MetricResult:
            async with semaphore:
                result = await self._score_one(record, model)
            _report(progress)
            return result

        return list(await asyncio.gather(*(one(r) for r in records)))

    async def _score_one(self, sample: RagasSample, model: Any) -> MetricResult:
        from ragkit_deepeval import _library

        started = time.perf_counter()
        details: dict[str, Any] = {"deepeval_metric": _library.METRIC_CLASSES[self.kind]}
        if sample.id is not None:
            details["sample_id"] = sample.id
        with Judge.tally() as tally:
            values, missing = self._case_fields(sample)
            if missing:
                details["failure"] = "missing_input"
                return MetricResult(None, f"metric {self.name!r} needs the sample's {', '.join(missing)}", details)
            if "context" in self.fields:
                details["context_source"] = "reference_contexts" if sample.reference_contexts else "contexts"
            metric = _library.make_metric(self.kind, model, self._metric_options())
            error: str | None = None
            try:
                await metric.a_measure(_library.test_case(**values), _show_indicator=False)
            except asyncio.CancelledError:
                raise
            except JudgeError as exc:
                details["failure"] = exc.kind
                error = str(exc)
            except _library.metric_errors() as exc:
                details["failure"] = "rejected"
                error = f"DeepEval {details['deepeval_metric']} could not score the sample: {exc}"
            except Exception as exc:
                details["failure"] = "error"
                error = f"DeepEval {details['deepeval_metric']} failed: {type(exc).__name__}: {exc}"
            details.update(tally.to_dict())
            details["seconds"] = round(time.perf_counter() - started, 3)
        if error is not None:
            return MetricResult(None, error, details)
        self._after_measure(metric, details)
        if getattr(metric, "reason", None):
            details["reason"] = str(metric.reason)
        value = getattr(metric, "score", None)
        problem = _bad_value(value)
        if problem is not None:
            details["failure"] = "invalid"
            return MetricResult(None, f"DeepEval {details['deepeval_metric']} gave {problem} for this sample", details)
        return MetricResult(float(value), None, details)  # type: ignore[arg-type]

    def _after_measure(self, metric: Any, details: dict[str, Any]) -> None:
        """Keep what explains a score (subclasses add their own)."""

    def _case_fields(self, sample: RagasSample) -> tuple[dict[str, Any], list[str]]:
        """The ``LLMTestCase`` arguments for ``sample``, and the sample fields it lacks."""
        contexts = list(sample.contexts)
        available: dict[str, Any] = {
            "question": sample.question or None,
            "response": sample.response if sample.response else None,
            "expected": sample.answers[0] if sample.answers else None,
            "retrieval_context": contexts or None,
            "context": list(sample.reference_contexts or []) or contexts or None,
        }
        key = {
            "input": "question",
            "actual_output": "response",
            "expected_output": "expected",
            "retrieval_context": "retrieval_context",
            "context": "context",
        }
        missing = [_FIELDS[f][0] for f in self.fields if available[key[f]] is None]
        if available["question"] is None and "question" not in missing:
            missing.append("question")  # DeepEval's test case always needs an input
        return available, missing

    def close(self) -> None:
        """Release the judge's cache file."""
        self._judge.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class AnswerRelevancyMetric(DeepEvalMetric):
    """DeepEval ``AnswerRelevancyMetric``: the share of the response's statements relevant to the question."""

    kind = "answer_relevancy"
    fields = ("input", "actual_output")
    needs: frozenset[str] = frozenset({"answer", "judge"})


class FaithfulnessMetric(DeepEvalMetric):
    """DeepEval ``FaithfulnessMetric``: the share of the response's claims the retrieved contexts do not contradict."""

    kind = "faithfulness"
    fields = ("actual_output", "retrieval_context")
    needs: frozenset[str] = frozenset({"retrieval", "answer", "judge"})


class ContextualPrecisionMetric(DeepEvalMetric):
    """DeepEval ``ContextualPrecisionMetric``: whether the contexts useful for the expected answer rank first."""

    kind = "contextual_precision"
    fields = ("input", "expected_output", "retrieval_context")
    needs: frozenset[str] = frozenset({"retrieval", "judge"})


class ContextualRecallMetric(DeepEvalMetric):
    """DeepEval ``ContextualRecallMetric``: the share of the expected answer's sentences the contexts support."""

    kind = "contextual_recall"
    fields = ("expected_output", "retrieval_context")
    needs: frozenset[str] = frozenset({"retrieval", "judge"})


class HallucinationMetric(DeepEvalMetric):
    """DeepEval ``HallucinationMetric``: the share of contexts the response does not contradict (1 is best).

    The contexts are the sample's gold passages (``reference_contexts``)
    when it has them, else the retrieved ones; ``details.context_source``
    says which.
    """

    kind = "hallucination"
    fields = ("actual_output", "context")
    needs: frozenset[str] = frozenset({"retrieval", "answer", "judge"})


class GEvalMetric(DeepEvalMetric):
    """DeepEval ``GEval``: an LLM-judged score (0 to 1) for a criterion written in the suite.

    Args:
        criteria: What a good answer is, in words (DeepEval turns it into
            evaluation steps with one judge call, made once per run).
        evaluation_params: Which test-case fields the judge sees: any of
            ``input``, ``actual_output``, ``expected_output``,
            ``retrieval_context``, ``context``.
        geval_name: A short name; the metric reports as
            ``deepeval_geval_<geval_name>``.
        evaluation_steps: Steps to use instead of ``criteria`` (no judge
            call to write them).
        **kwargs: The options every DeepEval metric takes (judge, retries ...).

    """

    kind = "geval"
    needs: frozenset[str] = frozenset({"judge"})

    def __init__(
        self,
        criteria: str | None = None,
        evaluation_params: Sequence[str] = ("input", "actual_output"),
        geval_name: str = "criterion",
        evaluation_steps: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(geval_name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", geval_name):
            raise ConfigError(f"metric 'deepeval_geval': 'geval_name' must be a short word, got {geval_name!r}")
        self.name = f"deepeval_geval_{geval_name}"
        if criteria is not None and (not isinstance(criteria, str) or not criteria.strip()):
            raise ConfigError(f"metric {self.name!r}: 'criteria' must be a non-empty text")
        if evaluation_steps is not None and (
            isinstance(evaluation_steps, str)
            or not evaluation_steps
            or not all(isinstance(s, str) and s.strip() for s in evaluation_steps)
        ):
            raise ConfigError(f"metric {self.name!r}: 'evaluation_steps' must be a list of texts")
        if criteria is None and evaluation_steps is None:
            raise ConfigError(f"metric {self.name!r}: give 'criteria' (or 'evaluation_steps')")
        params = [evaluation_params] if isinstance(evaluation_params, str) else list(evaluation_params or [])
        unknown = [p for p in params if p not in _FIELDS]
        if not params or unknown:
            raise ConfigError(
                f"metric {self.name!r}: 'evaluation_params' must list some of {', '.join(_FIELDS)}; "
                f"got {evaluation_params!r}"
            )
        self.geval_name = geval_name
        self.criteria = criteria
        self.evaluation_params = params
        self.fields = tuple(params)  # type: ignore[misc]  # per instance: what this criterion reads
        self.evaluation_steps = list(evaluation_steps) if evaluation_steps is not None else None
        super().__init__(**kwargs)

    def _metric_options(self) -> dict[str, Any]:
        from ragkit_deepeval._library import geval_params

        options: dict[str, Any] = {
            "name": self.geval_name,
            "evaluation_params": geval_params(self.evaluation_params),
            **self.deepeval_options,  # (G-Eval always gives its reason with the score)
        }
        if self.evaluation_steps is not None:
            options["evaluation_steps"] = list(self.evaluation_steps)
        else:
            options["criteria"] = self.criteria
        return options

    async def ascore_many(self, samples: Sequence[Any], progress: Any = None) -> list[MetricResult]:
        """Score the first sample alone, so its evaluation steps are written once and used for all."""
        if self.evaluation_steps is not None or len(samples) <= 1:
            return await super().ascore_many(samples, progress)
        first = await super().ascore_many(samples[:1], progress)
        steps = first[0].details.get("evaluation_steps")
        if steps:
            self.evaluation_steps = list(steps)
        try:
            rest = await super().ascore_many(samples[1:], progress)
        finally:
            if steps:
                self.evaluation_steps = None
        return first + rest

    def _after_measure(self, metric: Any, details: dict[str, Any]) -> None:
        steps = getattr(metric, "evaluation_steps", None)
        if steps:
            details["evaluation_steps"] = list(steps)


def _bad_value(value: Any) -> str | None:
    """Why ``value`` is not a usable score (``None`` when it is)."""
    if value is None:
        return "no value"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"a non-numeric value ({value!r})"
    if math.isnan(number):
        return "NaN"
    if not math.isfinite(number):
        return f"a non-finite value ({number!r})"
    return None


def _report(progress: Any) -> None:
    if progress is not None:
        with contextlib.suppress(Exception):  # a broken progress display must not stop the run
            progress(1)
