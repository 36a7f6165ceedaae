"""ragas metrics as ragkit ``metric`` components.

Every class here is a :class:`~ragkit.component.Component` of role
``metric``, built from config through the registry::

    from ragkit.registry import build
    metric = build("metric", {"type": "faithfulness", "judge": {"type": "transformers"}, "cache_dir": ".cache"})
    scores = metric.score_many(samples, progress=lambda done, total, errors: ...)

and follows the evaluation core's ``Metric`` protocol: ``name``, ``needs``
(a subset of ``{"retrieval", "answer", "judge"}``), ``score(sample)`` and
``score_many(samples, progress=None)`` returning one
:class:`~ragkit_ragas.sample.MetricScore` per sample, in order (plus the
async twins ``ascore`` / ``ascore_many``).

Scoring never raises for a sample: a judge call that fails, times out or
answers with unusable JSON is retried (``retries``, with backoff; see
:class:`~ragkit_ragas.judge.Judge`), and a sample that still cannot be
scored, or that ragas scores NaN, comes back as ``value=None`` with the
reason in ``error``. Problems of the metric itself (an unknown ragas
metric, a bad option) raise :class:`~ragkit.errors.ConfigError` when it is
built.

Sample fields reach ragas' inputs as follows: ``question`` → ``user_input``,
``response`` → ``response``, ``contexts`` → ``retrieved_contexts``,
``answers`` → ``reference`` (the first answer for LLM-judged metrics; for
the string metrics the best-scoring one, see ``references``),
``reference_contexts`` → ``reference_contexts``, ``context_ids`` →
``retrieved_context_ids``, ``reference_context_ids`` →
``reference_context_ids``; any other input is looked up by name in the
sample's extra fields.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ragkit.component import Component
from ragkit.errors import ConfigError
from ragkit_ragas._sync import run_sync
from ragkit_ragas.judge import Judge, JudgeError, JudgeSetup
from ragkit_ragas.sample import MetricScore, ProgressCallback, RagasSample

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER: dict[str, Any] = {"type": "sentence-transformers"}
"""The embedder when a metric needs one and none is configured: the packaged all-MiniLM-L6-v2."""

_MISSING = object()
# ragas input name -> (sample field it comes from, how to name it in messages)
_INPUT_FIELDS: dict[str, str] = {
    "user_input": "question",
    "response": "response",
    "retrieved_contexts": "contexts",
    "reference": "answers",
    "reference_contexts": "reference_contexts",
    "retrieved_context_ids": "context_ids",
    "reference_context_ids": "reference_context_ids",
}
_NEEDS_BY_INPUT = {
    "response": "answer",
    "retrieved_contexts": "retrieval",
    "retrieved_context_ids": "retrieval",
}


# -- finding ragas metric classes --------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def ragas_metric_classes() -> dict[str, tuple[type, str]]:
    """Every ragas metric class by name: ``{class name: (class, "collections" | "legacy")}``.

    The classes of ``ragas.metrics.collections`` come first; the legacy
    single-turn metrics of ``ragas.metrics`` (``NonLLMContextRecall``,
    ``AspectCritic`` ...) fill in the names the collections lack.
    """
    import os

    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    import ragas.metrics as legacy
    import ragas.metrics.collections as collections
    from ragas.metrics.base import SingleTurnMetric
    from ragas.metrics.collections.base import BaseMetric

    found: dict[str, tuple[type, str]] = {}
    for attr in collections.__all__:
        cls = getattr(collections, attr, None)
        if inspect.isclass(cls) and issubclass(cls, BaseMetric) and cls is not BaseMetric:
            found[attr] = (cls, "collections")
    deprecated: Mapping[str, Any] = vars(legacy).get("_DEPRECATED_METRICS", {})
    for attr, cls in deprecated.items():
        if inspect.isclass(cls) and issubclass(cls, SingleTurnMetric) and attr not in found:
            found[attr] = (cls, "legacy")
    return found


def resolve_ragas_metric(name: str) -> tuple[type, str]:
    """The ragas class named ``name`` (``NoiseSensitivity``, ``noise_sensitivity`` ...) and where it lives."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"metric 'ragas': option 'name' must name a ragas metric, got {name!r}")
    try:
        classes = ragas_metric_classes()
    except ImportError as exc:
        raise ConfigError(f"ragas metrics need the 'ragas' package (pip install ragkit-ragas): {exc}") from None
    wanted = _norm(name)
    matches = [(attr, entry) for attr, entry in classes.items() if _norm(attr) == wanted]
    if not matches:
        known = ", ".join(sorted(classes))
        raise ConfigError(f"no ragas metric named {name!r}; known: {known}")
    return matches[0][1]


# -- the base class ------------------------------------------------------------------------------------


class RagasMetric(Component):
    """A ragas metric as a ragkit ``metric``: the adapter every metric here shares.

    Subclasses name the ragas class (:attr:`ragas_class`) and say what the
    metric needs. Scoring runs each sample in its own task (at most
    ``concurrency`` at once), maps the sample to ragas' inputs, calls ragas
    and turns every outcome into a :class:`MetricScore`.
    """

    role: ClassVar[str] = "metric"
    name: str = ""
    """The metric's name, as results report it."""
    needs: frozenset[str] = frozenset()
    """What a sample must carry: ``retrieval`` (contexts), ``answer`` (a response), ``judge`` (an LLM)."""
    uses_embedder: ClassVar[bool] = False
    """Whether the metric takes an ``embedder`` option (the evaluation core then passes one, or ``None``)."""
    per_k: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True
    ragas_class: ClassVar[str] = ""
    """The ragas class this metric runs (a name in ``ragas.metrics.collections`` or the legacy metrics)."""

    def _setup(
        self,
        *,
        concurrency: int,
        references: str,
        options: Mapping[str, Any] | None,
        ragas_name: str | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(
                f"metric {self.name!r}: 'concurrency' must be an integer of at least 1, got {concurrency!r}"
            )
        if references not in ("first", "best"):
            raise ConfigError(f"metric {self.name!r}: 'references' must be 'first' or 'best', got {references!r}")
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"metric {self.name!r}: 'options' must be a mapping of ragas constructor options")
        self.concurrency = concurrency
        self.references = references
        self.ragas_options = dict(options or {})
        self._ragas_name = ragas_name or self.ragas_class
        self._lock = threading.Lock()
        self._metric: Any = None
        self._kind = ""
        self._inputs: list[tuple[str, bool]] = []
        self._judge: JudgeSetup | None = None

    # -- what subclasses provide ---------------------------------------------------------------------

    def _components(self, cls: type, kind: str) -> dict[str, Any]:
        """Constructor arguments ragas needs beyond the options (an LLM, embeddings)."""
        return {}

    # -- building the ragas metric ---------------------------------------------------------------------

    def ragas_metric(self) -> Any:
        """The ragas metric object (built on first use; imports ragas)."""
        with self._lock:
            if self._metric is None:
                cls, kind = resolve_ragas_metric(self._ragas_name)
                arguments = {**self._components(cls, kind), **self.ragas_options}
                try:
                    metric = cls(**arguments)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(
                        f"metric {self.name!r}: ragas {cls.__name__} rejected its options: {exc}"
                    ) from None
                if kind == "legacy":
                    from ragas.run_config import RunConfig

                    metric.init(RunConfig(max_retries=1, timeout=3600))
                    required = metric.get_required_columns().get("SINGLE_TURN", set())
                    self._inputs = [(column, column in required) for column in sorted(_legacy_columns(metric))]
                else:
                    signature = inspect.signature(metric.ascore)
                    self._inputs = [
                        (p.name, p.default is inspect.Parameter.empty)
                        for p in signature.parameters.values()
                        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                    ]
                self._kind = kind
                self._metric = metric
            return self._metric

    # -- scoring ---------------------------------------------------------------------------------------

    def score(self, sample: Any) -> Any:
        """Score one sample (blocking)."""
        return self.score_many([sample])[0]

    def score_many(self, samples: Sequence[Any], progress: ProgressCallback | None = None) -> list[Any]:
        """Score samples (blocking): one result per sample, in order, never raising for a sample.

        Results are the evaluation core's ``MetricResult`` when
        ``ragkit.evaluation`` is installed, else :class:`MetricScore` (the
        same fields: ``value``, ``error``, ``details``).
        """
        return run_sync(self.ascore_many(samples, progress))

    async def ascore(self, sample: Any) -> Any:
        """Async twin of :meth:`score`."""
        return (await self.ascore_many([sample]))[0]

    async def ascore_many(self, samples: Sequence[Any], progress: ProgressCallback | None = None) -> list[Any]:
        """Async twin of :meth:`score_many`: at most ``concurrency`` samples in flight."""
        records = [RagasSample.coerce(s) for s in samples]
        await asyncio.to_thread(self.ragas_metric)  # imports ragas off the loop
        semaphore = asyncio.Semaphore(self.concurrency)
        results: list[MetricScore | None] = [None] * len(records)
        report = _progress_reporter(progress, len(records), self.name)

        async def one(index: int, record: RagasSample) -> None:
            async with semaphore:
                score = await self._score_one(record)
            results[index] = score
            report(score)

        await asyncio.gather(*(one(i, r) for i, r in enumerate(records)))
        scores = [r if r is not None else MetricScore(None, "not scored") for r in results]
        return [_result(score) for score in scores]

    async def _score_one(self, sample: RagasSample) -> MetricScore:
        """One sample, every outcome a :class:`MetricScore` (only cancellation propagates)."""
        started = time.perf_counter()
        with Judge.tally() as tally:
            details: dict[str, Any] = {"ragas_metric": type(self._metric).__name__}
            if sample.id is not None:
                details["sample_id"] = sample.id
            try:
                value, extra, error = await self._evaluate(sample)
            except asyncio.CancelledError:
                raise
            except JudgeError as exc:
                value, extra, error = None, {"failure": exc.kind}, str(exc)
            except (ValueError, AssertionError, KeyError, TypeError) as exc:
                message = str(exc) or type(exc).__name__
                value, extra, error = (
                    None,
                    {"failure": "rejected"},
                    f"ragas {details['ragas_metric']} could not score the sample: {message}",
                )
            except Exception as exc:
                value, extra, error = (
                    None,
                    {"failure": "error"},
                    f"ragas {details['ragas_metric']} failed: {type(exc).__name__}: {exc}",
                )
            details.update(extra)
            if self._uses_judge():
                details.update(tally.to_dict())
            details["seconds"] = round(time.perf_counter() - started, 3)
        if error is not None:
            return MetricScore(None, error, details)
        return MetricScore(value, None, details)

    def _uses_judge(self) -> bool:
        return "judge" in self.needs

    async def _evaluate(self, sample: RagasSample) -> tuple[float | None, dict[str, Any], str | None]:
        """``(value, details, error)`` for one sample."""
        inputs, missing = self._gather_inputs(sample)
        if missing:
            return (
                None,
                {"failure": "missing_input", "missing": missing},
                (f"metric {self.name!r} needs the sample's {', '.join(missing)}, which it lacks"),
            )
        references = sample.answers if "reference" in inputs else [None]
        if self.references == "first" or len(references) <= 1:
            references = references[:1]
        best: tuple[float, int, dict[str, Any]] | None = None
        for index, reference in enumerate(references):
            if reference is not None:
                inputs["reference"] = reference
            value, reason = await self._run(inputs)
            problem = _bad_value(value)
            if problem is not None:
                hint = f": {reason}" if reason else ""
                return (
                    None,
                    {"failure": "nan" if problem == "NaN" else "invalid"},
                    (
                        f"ragas {type(self._metric).__name__} gave {problem} for this sample{hint} "
                        "(typically: the judge's answer had nothing to score, e.g. no statements or verdicts)"
                    ),
                )
            extra = {"reason": reason} if reason else {}
            if best is None or float(value) > best[0]:
                best = (float(value), index, extra)
        assert best is not None
        best_value, best_index, best_extra = best
        if len(references) > 1:
            best_extra["reference_index"] = best_index
        return best_value, best_extra, None

    async def _run(self, inputs: dict[str, Any]) -> tuple[Any, str | None]:
        metric = self._metric
        if self._kind == "legacy":
            from ragas.dataset_schema import SingleTurnSample

            value = await metric.single_turn_ascore(SingleTurnSample(**inputs))
            return value, None
        result = await metric.ascore(**inputs)
        return getattr(result, "value", result), getattr(result, "reason", None)

    def _gather_inputs(self, sample: RagasSample) -> tuple[dict[str, Any], list[str]]:
        inputs: dict[str, Any] = {}
        missing: list[str] = []
        for name, required in self._inputs:
            value = _sample_value(sample, name)
            if value is _MISSING:
                if required:
                    missing.append(_INPUT_FIELDS.get(name, name))
                continue
            inputs[name] = value
        return inputs, missing

    def close(self) -> None:
        """Release the judge's cache file."""
        if self._judge is not None:
            self._judge.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# -- LLM-judged metrics ---------------------------------------------------------------------------------


class RagasLLMMetric(RagasMetric):
    """A ragas metric judged by a ragkit generator (and, if it needs one, embedded by a ragkit embedder).

    Args:
        judge: The judge's generator config (``{"type": "transformers"}``,
            ``{"type": "openai", "model": ..., "base_url": ...}`` ...); a
            built generator is accepted too. ``None``: the packaged local
            SmolLM2 (offline, but too small to judge well).
        embedder: The embedder config, for metrics that embed (answer
            relevancy); ``None``: the packaged all-MiniLM-L6-v2.
        cache_dir: A folder for the judge's SQLite cache; ``None``: no
            cache. A re-run with a warm cache makes no judge calls and gives
            identical scores.
        concurrency: Samples scored at once, and judge calls in flight at
            once.
        retries: Extra attempts per judge call after a failure, a timeout
            or an unparsable answer; then the sample is marked failed.
        timeout: Seconds one judge call may take.
        max_tokens: Length limit of each judgement.
        temperature: The judge's sampling temperature (``0``: greedy,
            reproducible).
        backoff: Seconds before the first retry of a failed judge call
            (doubling after each, at most 8 s).
        references: ``first`` (ragas' ``reference`` is the first answer)
            or ``best`` (score against each answer, keep the best).
        options: Extra keyword arguments of the ragas metric's constructor
            (``{"strictness": 1}`` for answer relevancy ...).

    """

    needs: frozenset[str] = frozenset({"judge"})

    def __init__(
        self,
        judge: Mapping[str, Any] | Any | None = None,
        embedder: Mapping[str, Any] | Any | None = None,
        cache_dir: str | None = None,
        concurrency: int = 4,
        retries: int = 2,
        timeout: float | None = 120.0,
        max_tokens: int = 512,
        temperature: float = 0.0,
        backoff: float = 0.5,
        references: str = "first",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = self.name or self.component_type or _snake(self.ragas_class)
        self._setup(concurrency=concurrency, references=references, options=options)
        self._init_judge(judge, embedder, cache_dir, retries, timeout, max_tokens, temperature, backoff)

    def _init_judge(
        self,
        judge: Any,
        embedder: Any,
        cache_dir: str | None,
        retries: int,
        timeout: float | None,
        max_tokens: int,
        temperature: float,
        backoff: float,
    ) -> None:
        if embedder is not None and not isinstance(embedder, Mapping) and not hasattr(embedder, "embed_queries"):
            raise ConfigError(f"metric {self.name!r}: 'embedder' must be an embedder config like {{'type': ...}}")
        self.embedder_config = embedder
        self._judge = JudgeSetup(
            self.name,
            judge,
            cache_dir,
            retries=retries,
            timeout=timeout,
            concurrency=self.concurrency,
            max_tokens=max_tokens,
            temperature=temperature,
            backoff=backoff,
        )

    def judge(self) -> Judge:
        """The :class:`Judge` (its generator built on first use)."""
        assert self._judge is not None
        return self._judge.judge()

    def _components(self, cls: type, kind: str) -> dict[str, Any]:
        from ragkit_ragas.llm import RagkitRagasEmbeddings, RagkitRagasLLM

        wants_llm, wants_embeddings = _wants_components(cls, kind)
        components: dict[str, Any] = {}
        if wants_llm:
            components["llm"] = RagkitRagasLLM(self.judge())
        if wants_embeddings:
            components["embeddings"] = RagkitRagasEmbeddings(_build_embedder(self.embedder_config))
        return components


class FaithfulnessMetric(RagasLLMMetric):
    """ragas ``Faithfulness``: the share of the response's statements the retrieved contexts support."""

    ragas_class = "Faithfulness"
    name = "faithfulness"
    needs: frozenset[str] = frozenset({"retrieval", "answer", "judge"})


class AnswerRelevancyMetric(RagasLLMMetric):
    """ragas ``AnswerRelevancy``: how well questions written from the response match the question.

    Needs an embedder as well as the judge.
    """

    ragas_class = "AnswerRelevancy"
    name = "answer_relevancy"
    uses_embedder = True
    needs: frozenset[str] = frozenset({"answer", "judge"})


class ContextPrecisionMetric(RagasLLMMetric):
    """ragas ``ContextPrecision`` (with reference): whether the useful contexts are ranked first."""

    ragas_class = "ContextPrecision"
    name = "context_precision"
    needs: frozenset[str] = frozenset({"retrieval", "judge"})


class ContextRecallMetric(RagasLLMMetric):
    """ragas ``ContextRecall``: the share of the reference answer's statements the contexts support."""

    ragas_class = "ContextRecall"
    name = "context_recall"
    needs: frozenset[str] = frozenset({"retrieval", "judge"})


class GenericRagasMetric(RagasLLMMetric):
    """Any ragas metric by name: ``{"type": "ragas", "name": "NoiseSensitivity"}``.

    ``name`` is a class of ``ragas.metrics.collections`` or a legacy
    single-turn metric (case and underscores do not matter:
    ``noise_sensitivity`` works). The judge and embedder are built only if
    the ragas class takes them; ``needs`` follows the inputs its scoring
    method takes. Importing ragas happens when this is built (to resolve
    the name).

    The class says it needs a ``judge`` (so the evaluation core, which reads
    ``needs`` before building, passes one); an instance of a ragas metric
    that takes no LLM drops it from its own ``needs`` and never builds it.
    """

    needs: frozenset[str] = frozenset({"judge"})
    uses_embedder = True

    def __init__(
        self,
        name: str,
        judge: Mapping[str, Any] | Any | None = None,
        embedder: Mapping[str, Any] | Any | None = None,
        cache_dir: str | None = None,
        concurrency: int = 4,
        retries: int = 2,
        timeout: float | None = 120.0,
        max_tokens: int = 512,
        temperature: float = 0.0,
        backoff: float = 0.5,
        references: str = "first",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        cls, kind = resolve_ragas_metric(name)
        self.name = _snake(cls.__name__)
        self._setup(concurrency=concurrency, references=references, options=options, ragas_name=cls.__name__)
        self._init_judge(judge, embedder, cache_dir, retries, timeout, max_tokens, temperature, backoff)
        wants_llm, _ = _wants_components(cls, kind)
        self.needs = frozenset(_needs_of(cls, kind) | ({"judge"} if wants_llm else set()))


# -- metrics without an LLM --------------------------------------------------------------------------------


class RagasNonLLMMetric(RagasMetric):
    """A ragas metric that needs no judge (string overlap, string similarity of contexts)."""

    def _uses_judge(self) -> bool:
        return False


class NonLLMContextRecallMetric(RagasNonLLMMetric):
    """ragas ``NonLLMContextRecall``: the share of gold passages some retrieved context resembles.

    A gold passage counts as recalled when a retrieved context's string
    similarity (``distance_measure``) to it exceeds ``threshold``. Needs
    the sample's ``reference_contexts``.
    """

    ragas_class = "NonLLMContextRecall"
    name = "non_llm_context_recall"
    needs: frozenset[str] = frozenset({"retrieval"})

    def __init__(self, threshold: float = 0.5, distance_measure: str = "levenshtein", concurrency: int = 4) -> None:
        self.threshold = _unit_interval(self.name, "threshold", threshold)
        self.distance_measure = _distance_name(self.name, distance_measure)
        self._setup(concurrency=concurrency, references="first", options={"threshold": self.threshold})

    def _components(self, cls: type, kind: str) -> dict[str, Any]:
        return {"_distance_measure": _legacy_string_similarity(self.distance_measure)}


class NonLLMContextPrecisionMetric(RagasNonLLMMetric):
    """ragas ``NonLLMContextPrecisionWithReference``: average precision of the retrieved contexts.

    A retrieved context is relevant when its string similarity to some
    gold passage is at least ``threshold``. Needs ``reference_contexts``.
    """

    ragas_class = "NonLLMContextPrecisionWithReference"
    name = "non_llm_context_precision"
    needs: frozenset[str] = frozenset({"retrieval"})

    def __init__(self, threshold: float = 0.5, distance_measure: str = "levenshtein", concurrency: int = 4) -> None:
        self.threshold = _unit_interval(self.name, "threshold", threshold)
        self.distance_measure = _distance_name(self.name, distance_measure)
        self._setup(concurrency=concurrency, references="first", options={"threshold": self.threshold})

    def _components(self, cls: type, kind: str) -> dict[str, Any]:
        return {"distance_measure": _legacy_string_similarity(self.distance_measure)}


class StringSimilarityMetric(RagasNonLLMMetric):
    """ragas ``NonLLMStringSimilarity``: 1 - normalised edit distance between response and reference.

    ``distance_measure``: ``levenshtein``, ``hamming``, ``jaro`` or
    ``jaro_winkler``. With several reference answers the best is kept
    (``references="best"``).
    """

    ragas_class = "NonLLMStringSimilarity"
    name = "string_similarity"
    needs: frozenset[str] = frozenset({"answer"})

    def __init__(self, distance_measure: str = "levenshtein", references: str = "best", concurrency: int = 4) -> None:
        self.distance_measure = _distance_name(self.name, distance_measure)
        self._setup(concurrency=concurrency, references=references, options=None)

    def _components(self, cls: type, kind: str) -> dict[str, Any]:
        from ragas.metrics.collections import DistanceMeasure

        return {"distance_measure": DistanceMeasure(self.distance_measure)}


class RougeMetric(RagasNonLLMMetric):
    """ragas ``RougeScore``: ROUGE-1 or ROUGE-L (``rouge_type``) between response and reference.

    ``mode``: ``fmeasure``, ``precision`` or ``recall``. Tokens are stemmed
    (rouge-score's Porter stemmer).
    """

    ragas_class = "RougeScore"
    name = "rouge"
    needs: frozenset[str] = frozenset({"answer"})

    def __init__(
        self, rouge_type: str = "rougeL", mode: str = "fmeasure", references: str = "best", concurrency: int = 4
    ) -> None:
        if rouge_type not in ("rouge1", "rougeL"):
            raise ConfigError(f"metric 'rouge': 'rouge_type' must be 'rouge1' or 'rougeL', got {rouge_type!r}")
        if mode not in ("fmeasure", "precision", "recall"):
            raise ConfigError(f"metric 'rouge': 'mode' must be fmeasure, precision or recall, got {mode!r}")
        self._setup(concurrency=concurrency, references=references, options={"rouge_type": rouge_type, "mode": mode})


class BleuMetric(RagasNonLLMMetric):
    """ragas ``BleuScore``: sacrebleu's corpus BLEU / 100 between response and reference.

    ragas splits both texts into sentences at ``". "`` and scores them as
    a corpus; ``sacrebleu`` holds keyword arguments for ``corpus_bleu``.
    """

    ragas_class = "BleuScore"
    name = "bleu"
    needs: frozenset[str] = frozenset({"answer"})

    def __init__(
        self, sacrebleu: Mapping[str, Any] | None = None, references: str = "best", concurrency: int = 4
    ) -> None:
        if sacrebleu is not None and not isinstance(sacrebleu, Mapping):
            raise ConfigError("metric 'bleu': 'sacrebleu' must be a mapping of corpus_bleu options")
        self._setup(concurrency=concurrency, references=references, options={"kwargs": dict(sacrebleu or {})})


# -- helpers ----------------------------------------------------------------------------------------------


def _sample_value(sample: RagasSample, name: str) -> Any:
    if name == "user_input":
        return sample.question or _MISSING
    if name == "response":
        return _MISSING if sample.response is None else sample.response
    if name == "retrieved_contexts":
        return list(sample.contexts) or _MISSING
    if name == "reference":
        return sample.answers[0] if sample.answers else _MISSING
    if name == "reference_contexts":
        return list(sample.reference_contexts) if sample.reference_contexts else _MISSING
    if name == "retrieved_context_ids":
        return list(sample.context_ids) or _MISSING
    if name == "reference_context_ids":
        return list(sample.reference_context_ids) if sample.reference_context_ids else _MISSING
    return sample.extra.get(name, _MISSING)


def _legacy_columns(metric: Any) -> set[str]:
    columns = metric.get_required_columns(with_optional=True).get("SINGLE_TURN", set())
    return set(columns)


def _wants_components(cls: type, kind: str) -> tuple[bool, bool]:
    """Whether the ragas class takes an LLM, and embeddings."""
    if kind == "legacy":
        from ragas.metrics.base import MetricWithEmbeddings, MetricWithLLM

        return issubclass(cls, MetricWithLLM), issubclass(cls, MetricWithEmbeddings)
    parameters = inspect.signature(cls).parameters
    return "llm" in parameters, "embeddings" in parameters


def _needs_of(cls: Any, kind: str) -> set[str]:
    if kind == "legacy":
        try:
            metric = cls()
            names = _legacy_columns(metric)
        except Exception:
            names = set()
    else:
        names = set(inspect.signature(cls.ascore).parameters) - {"self"}
    return {_NEEDS_BY_INPUT[n] for n in names if n in _NEEDS_BY_INPUT}


def _build_embedder(config: Any) -> Any:
    if config is None:
        config = dict(DEFAULT_EMBEDDER)
    if not isinstance(config, Mapping):
        return config
    from ragkit.registry import build

    return build("embedder", dict(config))


def _bad_value(value: Any) -> str | None:
    """Why ``value`` is not a usable score (``None`` when it is)."""
    if value is None:
        return "no value"
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"a non-numeric value ({value!r})"
    if math.isnan(number):
        return "NaN"
    if not math.isfinite(number):
        return f"a non-finite value ({number!r})"
    return None


_DISTANCES = ("levenshtein", "hamming", "jaro", "jaro_winkler")


def _distance_name(metric: str, value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in _DISTANCES:
        raise ConfigError(
            f"metric {metric!r}: 'distance_measure' must be one of {', '.join(_DISTANCES)}, got {value!r}"
        )
    return value.lower()


def _unit_interval(metric: str, option: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"metric {metric!r}: {option!r} must be a number in [0, 1], got {value!r}")
    return float(value)


def _legacy_string_similarity(distance: str) -> Any:
    from ragas.metrics._string import DistanceMeasure, NonLLMStringSimilarity

    return NonLLMStringSimilarity(distance_measure=DistanceMeasure(distance))


_RESULT_CLASS: list[Any] = []


def _result(score: MetricScore) -> Any:
    """``score`` as the evaluation core's ``MetricResult`` when that is installed, else as is."""
    if not _RESULT_CLASS:
        try:
            from ragkit.evaluation.sample import MetricResult
        except ImportError:
            _RESULT_CLASS.append(None)
        else:
            _RESULT_CLASS.append(MetricResult)
    cls = _RESULT_CLASS[0]
    if cls is None:
        return score
    return cls(score.value, score.error, dict(score.details))


def _progress_reporter(progress: ProgressCallback | None, total: int, metric: str) -> Any:
    """A function to call with each finished sample's score, feeding ``progress`` in the form it takes."""
    counts = {"done": 0, "errors": 0}
    three = False
    if progress is not None:
        try:
            parameters = inspect.signature(progress).parameters.values()
            positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            three = len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in parameters)
        except (TypeError, ValueError):
            three = False

    def report(score: MetricScore) -> None:
        counts["done"] += 1
        counts["errors"] += 0 if score.ok else 1
        if progress is None:
            return
        try:
            if three:
                progress(counts["done"], total, counts["errors"])
            else:
                progress(1)
        except Exception:  # a broken progress display must not stop the run
            logger.exception("metric %s: the progress callback failed", metric)

    return report
