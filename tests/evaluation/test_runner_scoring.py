"""Scoring never produces NaN: a metric that fails for one sample records null and the reason, others score."""

from __future__ import annotations

import json
import math

from ragkit.evaluation.metrics import BaseMetric, build_metrics
from ragkit.evaluation.results import aggregate, percentile
from ragkit.evaluation.runner import score_samples
from ragkit.evaluation.sample import MetricResult

from .helpers import hit, sample


class Flaky(BaseMetric):
    """Raises on q2, returns NaN on q3, 1.0 otherwise."""

    component_type = "flaky"
    needs = frozenset({"retrieval"})

    def score(self, s):
        if s.question.id == "q2":
            raise RuntimeError("boom on q2")
        if s.question.id == "q3":
            return MetricResult(math.nan)
        return MetricResult(1.0)


class Broken(BaseMetric):
    """Fails on the whole batch."""

    component_type = "broken"
    needs = frozenset({"retrieval"})

    def score_many(self, samples, progress=None):
        raise ValueError("the judge is down")


class Short(BaseMetric):
    """Returns too few results."""

    component_type = "short"
    needs = frozenset({"retrieval"})

    def score_many(self, samples, progress=None):
        return [MetricResult(1.0)]


def samples():
    hits = [hit("a.md", 0, 50, "the Denver Broncos won")]
    made = [
        sample(hits, answers=["Denver Broncos"], spans=[("a.md", 0, 10)], id=f"q{i}", answer="Broncos")
        for i in range(1, 5)
    ]
    made[3].error = "UpstreamError: the model server answered 500"
    return made


def test_a_failing_metric_costs_only_its_samples():
    batch = samples()
    metrics = [Flaky(), Broken(), Short(), *build_metrics([("answer_hit", {}), ("f1", {})], ks=[1])]
    applied = score_samples(metrics, batch, retrieval_only=False)
    assert applied == ["flaky", "broken", "short", "answer_hit@1", "f1"]
    q1, q2, q3, q4 = batch
    assert q1.metrics["flaky"].value == 1.0
    assert q2.metrics["flaky"].value is None and q2.metrics["flaky"].error == "RuntimeError: boom on q2"
    assert q3.metrics["flaky"].value is None and "not a number" in q3.metrics["flaky"].error
    assert all(s.metrics["broken"].error == "ValueError: the judge is down" for s in batch[:3])
    assert all("returned 1 results for 3 samples" in s.metrics["short"].error for s in batch[:3])
    assert all(s.metrics["answer_hit@1"].value == 1.0 for s in batch[:3])
    assert (
        q4.metrics["f1"].value is None and "pipeline failed on this question: UpstreamError" in q4.metrics["f1"].error
    )
    agg = aggregate(batch, applied)
    assert agg["metrics"]["flaky"] == {"mean": 1.0, "scored": 1, "failed": 3}
    assert agg["metrics"]["broken"] == {"mean": None, "scored": 0, "failed": 4}
    assert agg["errors"] == 1
    json.dumps(agg, allow_nan=False)
    json.dumps([{n: r.to_dict() for n, r in s.metrics.items()} for s in batch], allow_nan=False)


def test_answer_metrics_skip_retrieval_only_pipelines():
    batch = samples()
    for s in batch:
        s.answer = None
    applied = score_samples(build_metrics([("mrr", {}), ("exact_match", {})], ks=[1]), batch, retrieval_only=True)
    assert applied == ["mrr"] and all("exact_match" not in s.metrics for s in batch)


def test_aggregates_by_k_latency_and_tokens():
    batch = samples()[:3]
    for i, s in enumerate(batch):
        s.latency = [0.1, 0.2, 0.4][i]
        s.usage = {"prompt_tokens": 100 * (i + 1), "completion_tokens": 10, "total_tokens": 100 * (i + 1) + 10}
    applied = score_samples(build_metrics([("recall", {})], ks=[1, 3]), batch, retrieval_only=True)
    agg = aggregate(batch, applied)
    assert agg["by_k"] == {"recall": {"1": 1.0, "3": 1.0}}
    assert agg["latency_s"]["p50"] == 0.2 and agg["latency_s"]["p95"] == 0.38
    assert agg["tokens"] == {"prompt_tokens": 200.0, "completion_tokens": 10.0, "total_tokens": 210.0}
    assert percentile([], 0.5) is None and percentile([3.0], 0.95) == 3.0


class JudgedCounting(BaseMetric):
    """A judged metric that reports running totals, failing on q2 (as the ragas metrics report)."""

    component_type = "judged_counting"
    needs = frozenset({"retrieval", "judge"})

    def score_many(self, samples, progress=None):
        results, errors = [], 0
        for done, s in enumerate(samples, 1):
            failed = s.question.id == "q2"
            errors += failed
            results.append(MetricResult.failed("unparsable: no JSON") if failed else MetricResult(1.0))
            progress(done, len(samples), errors)
        return results


class JudgedStepping(JudgedCounting):
    """The same, reporting one finished sample at a time (the core convention)."""

    component_type = "judged_stepping"

    def score_many(self, samples, progress=None):
        results = []
        for _sample in samples:
            results.append(MetricResult(1.0))
            progress(1)
        return results


def test_judged_metrics_feed_the_progress_bar_with_their_errors():
    seen = []
    score_samples(
        [JudgedCounting(), JudgedStepping()],
        samples()[:3],
        retrieval_only=True,
        stage="dense",
        progress=lambda *update: seen.append(update),
    )
    counting = [u for u in seen if u[0] == "dense: judged_counting"]
    assert counting == [
        ("dense: judged_counting", 1, 3, 0),
        ("dense: judged_counting", 2, 3, 1),
        ("dense: judged_counting", 3, 3, 1),
    ]
    stepping = [u for u in seen if u[0] == "dense: judged_stepping"]
    assert [u[1:] for u in stepping] == [(1, 3, 0), (2, 3, 0), (3, 3, 0)]
