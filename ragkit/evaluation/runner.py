"""Running a suite: ingest once, answer (or just retrieve) every question per pipeline, score, aggregate.

::

    from ragkit.evaluation import run_suite

    result = run_suite("evaluation/suites/smoke.yaml", store_dir="eval-out/.eval-store")
    for pipeline in result.pipelines:
        print(pipeline.run.name, pipeline.aggregates()["metrics"])

The documents go into a collection in ``store_dir``, named after the suite
and a hash of the folder and collection config, so a later run with the same
documents reuses it (ragkit's ingest is incremental: unchanged files cost
nothing). Retrieval-only pipelines search in batches (``search_many``);
RAG pipelines ask one question at a time, or ``concurrency`` at once.

Nothing a single question or metric does can stop the run or poison a mean:
a pipeline failure is recorded on its sample, a metric that raises or
returns NaN for a sample records ``value: null`` and the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.errors import ConfigError, MissingDependencyError
from ragkit.evaluation.answer_cache import AnswerCache, CachedAnswer, answer_key
from ragkit.evaluation.metrics.base import Metric, checked, describe_error
from ragkit.evaluation.questions import draw_sample
from ragkit.evaluation.results import EvalResult, PipelineResult, gc_paused
from ragkit.evaluation.sample import EvalQuestion, EvalSample, MetricResult
from ragkit.evaluation.suite import PipelineRun, Suite, load_suite

if TYPE_CHECKING:
    from ragkit.collection import Collection

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int, int], None]
"""``progress(stage, done, total, errors)``; stages: ``ingest: files``, ``<pipeline>``, ``<pipeline>: <metric>``."""

SEARCH_BATCH = 256
"""Questions per ``search_many`` call in retrieval-only runs."""


class EvaluationCancelled(BaseException):
    """Raised by a progress callback to stop a run at the next step (the service's cancel).

    A ``BaseException``, like ``KeyboardInterrupt``, so that the per-question and
    per-metric failure handling (which records an ``Exception`` on the sample and
    goes on) lets it through and the run stops instead.
    """


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _ingest(suite: Suite, store_dir: Path, progress: ProgressCallback | None) -> tuple[Collection, dict[str, Any]]:
    from ragkit.collection import Collection

    name = suite.collection_name()
    collection = Collection.open_or_create(name, suite.collection_config(), store_dir)
    started = time.perf_counter()

    def on_ingest(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(f"ingest: {stage}", done, total, 0)

    try:
        report = collection.ingest([suite.documents_dir], sync=True, progress=on_ingest)
        chunks = collection.store.count()
    except BaseException:
        collection.close()
        raise
    if chunks == 0:
        collection.close()
        failed = "; ".join(f"{i.source}: {i.reason}" for i in report.failed[:3])
        raise ConfigError(
            f"{suite.source}: documents.path: nothing could be ingested from {suite.documents_dir}"
            + (f" ({failed})" if failed else "")
        )
    info = {
        "name": name,
        "folder": str(collection.folder),
        "chunks": chunks,
        "ingest": {**report.to_dict(), "seconds": round(time.perf_counter() - started, 3)},
    }
    return collection, info


def search_pipeline(run: PipelineRun) -> Any:
    """The :class:`~ragkit.rag.RagPipeline` whose stages a run searches with (its generator is never built).

    A plain retrieval-only run is one retriever (``mode``) with no score threshold.
    """
    from ragkit.rag import PipelineConfig, RagPipeline

    config = run.config
    if config is None:
        config = PipelineConfig.parse({"retrieval": {"mode": run.mode, "top_k": run.top_k, "min_score": None}})
    return RagPipeline(config, name=run.name)


def _retrieve(
    run: PipelineRun, collection: Collection, questions: Sequence[EvalQuestion], progress: ProgressCallback | None
) -> list[EvalSample]:
    samples: list[EvalSample] = []
    errors = 0
    pipeline = search_pipeline(run)
    for start in range(0, len(questions), SEARCH_BATCH):
        part = questions[start : start + SEARCH_BATCH]
        began = time.perf_counter()
        try:
            found = pipeline.search_many([q.question for q in part], collection, run.top_k)
        except (ConfigError, MissingDependencyError):
            raise
        except Exception as exc:
            reason = describe_error(exc)
            samples.extend(EvalSample(q, run.name, error=reason) for q in part)
            errors += len(part)
        else:
            share = (time.perf_counter() - began) / len(part)
            samples.extend(
                EvalSample(q, run.name, hits=result.hits, latency=share, timings=_search_timings(result, share))
                for q, result in zip(part, found, strict=True)
            )
        if progress is not None:
            progress(run.name, len(samples), len(questions), errors)
    return samples


def _search_timings(result: Any, seconds: float) -> dict[str, float]:
    """A retrieval sample's timings: ``retrieve`` and each stage's share (``stage:<name>``)."""
    timings = {"retrieve": seconds}
    timings.update((key, value) for key, value in result.timings.items() if key.startswith("stage:"))
    return timings


@dataclass(slots=True)
class _CacheView:
    """The answer cache as one pipeline uses it: the store, its key parts, and the generator.

    The generator is loaded on the first answer the cache does not have, outside that question's latency.
    """

    cache: AnswerCache
    pipeline: dict[str, Any]
    fingerprint: str
    generator: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    load_seconds: float | None = None
    """Seconds spent loading the generator, ``None`` until it was needed."""

    def ensure_loaded(self) -> float:
        """Load the generator if this is the first miss; the seconds this call spent (waiting included)."""
        if self.load_seconds is not None:
            return 0.0
        began = time.perf_counter()
        with self.lock:
            if self.load_seconds is None:
                load = getattr(self.generator, "load", None)
                if callable(load):
                    load()
                self.load_seconds = time.perf_counter() - began
        return time.perf_counter() - began


def _ask_one(
    pipeline: Any, collection: Collection, run: PipelineRun, question: EvalQuestion, cached: _CacheView | None = None
) -> EvalSample:
    began = time.perf_counter()
    try:
        if cached is None:
            answer = pipeline.ask(question.question, collection)
        else:
            text = pipeline.check_question(question.question)
            searched = pipeline.search(text, collection)
            hits = searched.hits
            retrieved = time.perf_counter() - began
            key = answer_key(cached.pipeline, cached.fingerprint, text, hits)
            found = cached.cache.get(key, len(hits))
            if found is not None:
                return _replayed(run, question, hits, found)
            if hits:  # without hits the answer is the no-answer text: no model to load
                began += cached.ensure_loaded()  # its load time is warm-up, not this question's latency
            answer = pipeline.ask_with_hits(text, hits)
            answer.timings = {
                **_search_timings(searched, retrieved),
                **answer.timings,
                "total": time.perf_counter() - began,
            }
    except (ConfigError, MissingDependencyError):
        raise  # not about this question: every other one would fail the same way
    except Exception as exc:
        return EvalSample(question, run.name, error=describe_error(exc), latency=time.perf_counter() - began)
    sample = EvalSample(
        question,
        run.name,
        hits=list(answer.hits),
        answer=answer.text,
        citations=[c.to_dict() for c in answer.citations],
        usage=answer.usage.to_dict(),
        timings=dict(answer.timings),
        latency=time.perf_counter() - began,
    )
    # keep every answer a model wrote, cited or not (``grounded`` says whether it cites): only the no-answer
    # reply, given when no hit reached the prompt, cost no model call and is not worth keeping
    if cached is not None and answer.hits:
        entry = CachedAnswer.of(sample, hits, answer.hits)
        if entry is not None:  # the prompt's hits are the retrieved objects themselves
            cached.cache.put(key, entry)
    return sample


def _replayed(run: PipelineRun, question: EvalQuestion, hits: list[Any], found: CachedAnswer) -> EvalSample:
    """The sample of an answer found in the cache: the hits it used, its text, citations and original costs."""
    return EvalSample(
        question,
        run.name,
        hits=[hits[i] for i in found.used],
        answer=found.text,
        citations=found.citations,
        usage=found.usage,
        timings=found.timings,
        latency=found.latency,
        answer_cached=True,
    )


def _replays_answers(run: PipelineRun, cache: AnswerCache | None) -> bool:
    """Whether ``run`` uses the answer cache: a RAG pipeline with greedy answers, and a cache that opened."""
    return (
        cache is not None
        and cache.enabled
        and not run.retrieval_only
        and run.config is not None
        and run.config.answer.temperature == 0
    )


def _answer_cache_view(run: PipelineRun, pipeline: Any, cache: AnswerCache | None) -> _CacheView | None:
    """How ``run`` uses the answer cache, or ``None`` (see :func:`_replays_answers`)."""
    if cache is None or run.config is None or not _replays_answers(run, cache):
        return None
    from ragkit.generation.fingerprint import generator_fingerprint

    generator = pipeline.generator
    return _CacheView(cache, run.config.model_dump(mode="json"), generator_fingerprint(generator), generator)


def _ask(
    run: PipelineRun,
    collection: Collection,
    questions: Sequence[EvalQuestion],
    concurrency: int,
    progress: ProgressCallback | None,
    cache: AnswerCache | None = None,
) -> tuple[list[EvalSample], float]:
    """Every question's sample, and the seconds spent loading the generator on a first cache miss (else 0)."""
    from ragkit.rag import RagPipeline

    pipeline = RagPipeline(run.config, name=run.name)
    cached = _answer_cache_view(run, pipeline, cache)
    done = errors = 0

    def finished(sample: EvalSample) -> EvalSample:
        nonlocal done, errors
        done += 1
        errors += sample.error is not None
        if progress is not None:
            progress(run.name, done, len(questions), errors)
        return sample

    def loading() -> float:
        return (cached.load_seconds or 0.0) if cached is not None else 0.0

    if concurrency <= 1:
        return [finished(_ask_one(pipeline, collection, run, q, cached)) for q in questions], loading()
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ragkit-eval")
    try:
        futures = [pool.submit(_ask_one, pipeline, collection, run, q, cached) for q in questions]
        return [finished(f.result()) for f in futures], loading()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # stop at the questions already being asked
        raise
    finally:
        pool.shutdown(wait=True)


def _warm_up(run: PipelineRun, collection: Collection, load_generator: bool = True) -> None:
    """Load the models before the clock starts, so the first question's latency is not the load time.

    With the answer cache on, the generator is left for the first answer the cache does not have: when it
    has them all, the model is never loaded.
    """
    search_pipeline(run).search("warm up", collection, top_k=1)
    if not run.retrieval_only and load_generator:
        from ragkit.rag import RagPipeline

        load = getattr(RagPipeline(run.config, name=run.name).generator, "load", None)
        if callable(load):
            load()


def score_samples(
    metrics: Sequence[Metric],
    samples: Sequence[EvalSample],
    retrieval_only: bool,
    stage: str = "",
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Score ``samples`` with every metric that applies; returns the names of the metrics that applied.

    Answer metrics do not apply to retrieval-only pipelines. A sample whose
    pipeline failed gets a failed result for every metric; a metric that
    raises fails the samples it was given, with the reason.
    """
    applied: list[str] = []
    usable = [s for s in samples if s.error is None]
    for metric in metrics:
        needs = set(metric.needs)
        if retrieval_only and "answer" in needs:
            continue
        name = metric.name
        applied.append(name)
        for sample in samples:
            if sample.error is not None:
                sample.metrics[name] = MetricResult.failed(f"the pipeline failed on this question: {sample.error}")
        results = _score_many(
            metric, usable, f"{stage}: {name}" if stage else name, progress if "judge" in needs else None
        )
        for sample, result in zip(usable, results, strict=True):
            sample.metrics[name] = result
    return applied


def _score_many(
    metric: Metric, samples: Sequence[EvalSample], stage: str, progress: ProgressCallback | None
) -> list[MetricResult]:
    if not samples:
        return []
    done = errors = 0

    def advance(finished: int, total: int | None = None, failed: int | None = None) -> None:
        """``advance(n)``: n more samples done; ``advance(done, total, errors)``: the running totals."""
        nonlocal done, errors
        if total is None:
            done += finished
        else:
            done, errors = finished, failed or 0
        if progress is not None:
            progress(stage, done, len(samples), errors)

    try:
        results = list(metric.score_many(samples, advance))
    except Exception as exc:
        log.warning("metric %s failed on the whole batch: %s", metric.name, describe_error(exc))
        return [MetricResult.failed(describe_error(exc)) for _ in samples]
    if len(results) != len(samples):
        reason = f"the metric returned {len(results)} results for {len(samples)} samples"
        return [MetricResult.failed(reason) for _ in samples]
    return [checked(result) for result in results]


def run_suite(
    suite: Suite | str | Path,
    store_dir: str | Path | None = None,
    sample: int | None = None,
    pipelines: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    answer_cache: bool | None = None,
) -> EvalResult:
    """Run ``suite`` (a :class:`Suite` or a suite file) and return the samples and aggregates.

    Args:
        suite: The suite, or the path of its YAML file.
        store_dir: Where the eval collection lives (default: ``$RAGKIT_HOME/eval-store``).
        sample: Evaluate this many questions instead of the suite's ``sample``.
        pipelines: Run only these pipelines of the suite (by name).
        progress: ``progress(stage, done, total, errors)`` as work advances; it may
            raise :class:`EvaluationCancelled` to stop the run.
        answer_cache: Turn the suite's answer cache on or off for this run
            (:mod:`ragkit.evaluation.answer_cache`).

    """
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    suite = suite.with_overrides(sample=sample, pipelines=pipelines, answer_cache=answer_cache)
    if store_dir is None:
        from ragkit.config import Settings

        store_dir = Settings.load().home / "eval-store"
    metrics = suite.build_metrics(Path(store_dir).expanduser())
    runs = suite.pipeline_runs()
    everything = suite.load_questions()
    questions = draw_sample(everything, suite.sample, suite.seed)
    started_at, began = _now(), time.perf_counter()
    collection, info = _ingest(suite, Path(store_dir).expanduser(), progress)
    results: list[PipelineResult] = []
    metric_names: list[str] = []
    cache = AnswerCache(Path(store_dir).expanduser() / "answer-cache") if suite.answer_cache else None
    with collection:
        for run in runs:
            seconds: dict[str, float] = {}
            if progress is not None:
                progress(run.name, 0, len(questions), 0)
            clock = time.perf_counter()
            _warm_up(run, collection, load_generator=not _replays_answers(run, cache))
            seconds["warmup"] = time.perf_counter() - clock
            clock = time.perf_counter()
            if run.retrieval_only:
                samples = _retrieve(run, collection, questions, progress)
                seconds["answer"] = time.perf_counter() - clock
            else:
                samples, loading = _ask(run, collection, questions, suite.concurrency, progress, cache)
                seconds["answer"] = time.perf_counter() - clock - loading
                seconds["warmup"] += loading
            clock = time.perf_counter()
            with gc_paused():
                applied = score_samples(metrics, samples, run.retrieval_only, run.name, progress)
            seconds["score"] = time.perf_counter() - clock
            metric_names += [name for name in applied if name not in metric_names]
            results.append(PipelineResult(run, samples, applied, seconds))
    if cache is not None:
        cache.close()
    return EvalResult(
        suite=suite,
        questions=questions,
        questions_total=len(everything),
        pipelines=results,
        metric_names=metric_names,
        collection=info,
        started_at=started_at,
        finished_at=_now(),
        duration_s=time.perf_counter() - began,
    )
