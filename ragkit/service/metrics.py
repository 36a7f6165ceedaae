"""Prometheus metrics of one app, in their own registry (two apps in one process do not clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ragkit.rag.answer import Answer
from ragkit.service.evaluations import Evaluation
from ragkit.service.jobs import Job

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The service's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ragkit_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ragkit_http_request_duration_seconds",
            "Seconds from request to the end of the response, by route template and method",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("ragkit_http_requests_in_flight", "Requests being served", registry=self.registry)
        self.stage_seconds = Histogram(
            "ragkit_pipeline_stage_seconds",
            "Seconds per pipeline stage of answered questions (from Answer.timings)",
            ["pipeline", "stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "ragkit_generated_tokens",
            "Prompt and completion tokens of answered questions",
            ["pipeline", "kind"],
            registry=self.registry,
        )
        self.jobs = Counter("ragkit_ingest_jobs", "Finished ingest jobs by status", ["status"], registry=self.registry)
        self.jobs_submitted = Counter("ragkit_ingest_jobs_submitted", "Ingest jobs queued", registry=self.registry)
        self.ingest_files = Counter(
            "ragkit_ingest_files",
            "Files seen by ingest jobs, by outcome (added, updated, unchanged, deleted, failed, skipped)",
            ["outcome"],
            registry=self.registry,
        )
        self.ingest_chunks = Counter(
            "ragkit_ingest_chunks_written", "Chunks written by ingest jobs", registry=self.registry
        )
        self.evaluations = Counter(
            "ragkit_evaluations", "Finished evaluation runs by status", ["status"], registry=self.registry
        )

    def observe_evaluation(self, run: Evaluation) -> None:
        """Count a finished evaluation run."""
        self.evaluations.labels(run.status).inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def observe_answer(self, answer: Answer) -> None:
        """Record an answer's stage timings and tokens."""
        pipeline = answer.pipeline or "unknown"
        for stage, seconds in answer.timings.items():
            self.stage_seconds.labels(pipeline, stage).observe(max(0.0, float(seconds)))
        self.tokens.labels(pipeline, "prompt").inc(answer.usage.prompt_tokens)
        self.tokens.labels(pipeline, "completion").inc(answer.usage.completion_tokens)

    def observe_job(self, job: Job) -> None:
        """Count a finished ingest job and its files."""
        self.jobs.labels(job.status).inc()
        report = job.report
        if report is None:
            return
        for outcome, count in (
            ("added", report.added),
            ("updated", report.updated),
            ("unchanged", report.unchanged),
            ("deleted", report.deleted),
            ("failed", len(report.failed)),
            ("skipped", len(report.skipped)),
        ):
            self.ingest_files.labels(outcome).inc(count)
        self.ingest_chunks.inc(report.chunks_written)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
