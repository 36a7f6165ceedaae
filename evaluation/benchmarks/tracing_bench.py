"""What OpenTelemetry tracing costs search throughput (issue 12 target: on < 3%, off nothing measurable).

A small squad-dev collection (the first ``--docs`` documents, the packaged embedder, FAISS + BM25; ingested
by a child process) is searched in-process, one question at a time, through two query pipelines:
``hybrid`` (dense + lexical + reciprocal rank fusion: four spans per query when traced: two retrievals,
the query embedding, the fusion stage) and ``lexical`` (BM25 alone, one span: the cheapest real search,
where a span's cost weighs most). Three modes:

- ``off``: tracing off, as by default. Before anything else, the no-op hooks are timed and one ``off``
  round runs with OpenTelemetry never imported in the process (checked).
- ``on``: tracing on with the real SDK: a TracerProvider, a BatchSpanProcessor and an exporter that
  drops what it is given (so no network or disk time is counted; the spans are still built, attributed,
  queued and handed over in batches).
- ``on+content``: the same, with query text and documents recorded (the opt-in).
- ``on 10%``: on, sampling one trace in ten (``OTEL_TRACES_SAMPLER=parentbased_traceidratio``,
  ``OTEL_TRACES_SAMPLER_ARG=0.1``): what a busy service would run.

The modes alternate query by query (their order rotating), so load spikes on a shared machine hit every
mode alike; throughput is ``1 / median latency`` per mode, reported with its ratio against ``off`` (the
ratio of means too). Because a shared machine's
noise is larger than the effect, the cost is also measured directly: the seconds spent making one hybrid
query's four spans (with the SDK, in a tight loop) over the seconds of one query, and what the no-op
hooks cost when tracing is off (ns per hook call).

    .venv/bin/python evaluation/benchmarks/tracing_bench.py --out bench-out/steps/tracing.json
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import dataset_dir, load_questions, log, machine, prepare_documents, write_json

from ragkit import Collection, tracing
from ragkit.query import QueryPipeline

STAGES: list[Any] = [{"type": "dense", "top_k": 10}, {"type": "lexical", "top_k": 10}, "rrf"]


def otel_loaded() -> bool:
    """Whether any opentelemetry module is imported in this process."""
    return any(name.startswith("opentelemetry") for name in sys.modules)


def make_provider(ratio: float | None = None) -> Any:
    """A real SDK TracerProvider with a BatchSpanProcessor over an exporter that drops the spans.

    ``ratio``: sample that share of traces (``parentbased_traceidratio``, as ``OTEL_TRACES_SAMPLER`` sets).
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class DropExporter(SpanExporter):
        """Takes every batch and keeps nothing (counts the spans)."""

        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)) if ratio is not None else None)
    exporter = DropExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    provider.exporter = exporter  # type: ignore[attr-defined]
    return provider


def run_round(pipeline: QueryPipeline, collection: Collection, questions: list[str]) -> float:
    """Queries per second over ``questions``, one at a time."""
    started = time.perf_counter()
    for question in questions:
        pipeline.search(question, collection, top_k=5)
    return len(questions) / (time.perf_counter() - started)


def hook_cost_off(pipeline: QueryPipeline, collection: Collection, calls: int) -> float:
    """Nanoseconds per no-op hook call when tracing is off (``with tracing.stage(...)``), minus an empty loop."""
    assert not tracing.enabled()
    states = pipeline._states(["q"], collection, 5, None, None)
    stage = pipeline.stages[0]
    started = time.perf_counter()
    for _ in range(calls):
        with tracing.stage(stage, states):
            pass
    hooked = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        pass
    empty = time.perf_counter() - started
    return (hooked - empty) / calls * 1e9


def span_cost_on(pipeline: QueryPipeline, collection: Collection, queries: int) -> float:
    """Seconds to make one query's spans (2 retrievals, 1 embedding, 1 fusion stage) with the SDK."""
    assert tracing.enabled()
    states = pipeline._states(["Which NFL team won Super Bowl 50?"], collection, 5, None, None)
    dense, lexical, fuse = pipeline.stages
    embedder = collection.embedder
    started = time.perf_counter()
    for _ in range(queries):
        with tracing.stage(dense, states), tracing.embeddings(embedder, states[0].queries):
            pass
        with tracing.stage(lexical, states):
            pass
        with tracing.stage(fuse, states):
            pass
    return (time.perf_counter() - started) / queries


def measure(
    name: str, pipeline: QueryPipeline, collection: Collection, questions: list[str], rounds_n: int, providers: Any
) -> dict[str, Any]:
    """Per-query latency per mode, the modes alternating query by query (their order rotating).

    Pairing each question's three runs side by side makes load spikes on a shared machine hit every mode
    alike; the medians per mode give the throughput ratios (``1 / median``), the means are reported too.
    """
    run_round(pipeline, collection, questions[:5])  # warm: model loaded, indexes read
    modes = ["off", "on", "on+content", "on 10%"]
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    for number in range(rounds_n):
        for index, question in enumerate(questions):
            shift = (number * len(questions) + index) % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                if mode == "off":
                    tracing.disable()
                else:
                    tracing.enable(providers[mode], content=mode == "on+content")
                started = time.perf_counter()
                pipeline.search(question, collection, top_k=5)
                seconds[mode].append(time.perf_counter() - started)
                tracing.disable()
        medians = {mode: statistics.median(values) for mode, values in seconds.items()}
        log(f"{name} round {number + 1}: " + ", ".join(f"{m} p50 {v * 1000:.2f} ms" for m, v in medians.items()))
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    means = {mode: statistics.fmean(values) for mode, values in seconds.items()}
    return {
        "stages": [stage.to_config() for stage in pipeline.stages],
        "queries_per_mode": len(seconds["off"]),
        "p50_ms": {mode: round(v * 1000, 4) for mode, v in medians.items()},
        "mean_ms": {mode: round(v * 1000, 4) for mode, v in means.items()},
        "qps_from_p50": {mode: round(1 / v, 2) for mode, v in medians.items()},
        "ratio_to_off": {mode: round(medians["off"] / v, 4) for mode, v in medians.items()},
        "ratio_to_off_by_mean": {mode: round(means["off"] / v, 4) for mode, v in means.items()},
        "query_ms": round(medians["off"] * 1000, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=None, help="squad-dev folder (default: the shared one)")
    parser.add_argument("--docs", type=int, default=3, help="documents in the collection")
    parser.add_argument("--queries", type=int, default=30, help="questions per round")
    parser.add_argument(
        "--rounds", type=int, default=4, help="passes over the questions (every question runs in every mode per pass)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--home", type=Path, default=None, help="a store folder holding collection 'squad' already")
    parser.add_argument("--ingest-into", default=None, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()

    assert not tracing.enabled(), "run without OTEL_* variables: the benchmark turns tracing on itself"
    if args.ingest_into:
        with Collection.create("squad", store_dir=args.ingest_into) as collection:
            collection.ingest([Path(args.dataset)])
        return
    dataset = dataset_dir(args.dataset)
    with tempfile.TemporaryDirectory(prefix="tracing-bench-") as tmp:
        work = Path(tmp)
        documents = prepare_documents(dataset, work, args.docs)
        names = [p.name for p in sorted(documents.iterdir())]
        questions = [q["question"] for q in load_questions(dataset, names, args.queries)]
        home = args.home or work / "home"
        if args.home is None:
            log(f"ingesting {len(names)} documents (in a child process); {len(questions)} questions per round")
            # a child ingests: the loaders' connectors (LangChain's imports langsmith, which imports the
            # OpenTelemetry SDK) stay out of this process, so 'off' really runs without opentelemetry loaded
            child = [sys.executable, __file__, "--dataset", str(documents), "--ingest-into", str(home)]
            subprocess.run(child, check=True)
        results: dict[str, Any] = {}
        with Collection.open("squad", store_dir=home) as collection:
            hybrid = QueryPipeline.from_configs(STAGES, top_k=5)
            lexical = QueryPipeline.from_configs([{"type": "lexical", "top_k": 10}], top_k=5)
            run_round(hybrid, collection, questions[:5])
            run_round(lexical, collection, questions[:5])
            hook_ns = hook_cost_off(hybrid, collection, 200_000)
            off_without_otel = not otel_loaded()
            off_alone = {"hybrid": run_round(hybrid, collection, questions)}
            off_without_otel = off_without_otel and not otel_loaded()
            provider = make_provider()
            providers = {"on": provider, "on+content": provider, "on 10%": make_provider(0.1)}
            results["hybrid"] = measure("hybrid", hybrid, collection, questions, args.rounds, providers)
            # BM25 answers in about a millisecond: each round asks every question 10 times
            results["lexical"] = measure("lexical", lexical, collection, questions * 10, args.rounds, providers)
            tracing.enable(provider, content=False)
            span_s = span_cost_on(hybrid, collection, 2_000)
            tracing.enable(provider, content=True)
            span_content_s = span_cost_on(hybrid, collection, 2_000)
            tracing.disable()
            provider.force_flush()
            exported = provider.exporter.spans
            provider.shutdown()

    query_s = results["hybrid"]["query_ms"] / 1000
    result = {
        "machine": machine(),
        "documents": names,
        "questions_per_round": len(questions),
        "pipelines": results,
        "off_before_opentelemetry_qps": round(off_alone["hybrid"], 2),
        "off_ran_without_opentelemetry_loaded": off_without_otel,
        "span_cost_per_query_ms": round(span_s * 1000, 4),
        "span_cost_share": round(span_s / query_s, 5),
        "span_cost_with_content_per_query_ms": round(span_content_s * 1000, 4),
        "span_cost_with_content_share": round(span_content_s / query_s, 5),
        "off_hook_ns_per_call": round(hook_ns, 1),
        "off_hook_share": round(4 * hook_ns * 1e-9 / query_s, 7),
        "spans_exported": exported,
    }
    print(f"search over {len(names)} squad-dev documents, {len(questions)} questions per round")
    for name, numbers in results.items():
        for mode, qps in numbers["qps_from_p50"].items():
            print(
                f"  {name:<8} {mode:<11} {qps:8.1f} queries/s (p50 {numbers['p50_ms'][mode]:.3f} ms)"
                f"   x{numbers['ratio_to_off'][mode]:.3f} of off (by mean x{numbers['ratio_to_off_by_mean'][mode]:.3f})"
            )
    print(
        f"  hybrid query {results['hybrid']['query_ms']} ms; its 4 spans {result['span_cost_per_query_ms']} ms "
        f"({result['span_cost_share']:.2%}), with content {result['span_cost_with_content_per_query_ms']} ms "
        f"({result['span_cost_with_content_share']:.2%})"
    )
    print(
        f"  off: {hook_ns:.0f} ns per hook call, {result['off_hook_share']:.4%} of a hybrid query; "
        f"opentelemetry never imported during the off measurement: {off_without_otel}"
    )
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
