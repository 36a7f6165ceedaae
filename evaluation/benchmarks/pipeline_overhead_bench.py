"""What the stage machinery costs per query: a pipeline of no-op stages against calling the store.

The published overheads of the big frameworks' pipeline machinery (Haystack
5.9 ms, LlamaIndex 6 ms, LangChain 10 ms per query) are measured the same
way: the framework's pipeline around a component that does nothing costly,
against the component called directly. Here the component is the FAISS
store searched with a fixed vector (no embedding, so model time does not
drown the difference), wrapped as a retriever stage and followed by one
no-op stage of every other kind (transform, fuse, rerank, shape), each of
which touches the state the way a real stage does.

    .venv/bin/python evaluation/benchmarks/pipeline_overhead_bench.py --out bench-out/steps/pipeline_overhead.json

Prints p50 per query for the store call, the sync pipeline, and the async
pipeline (one worker-thread hop per query, as the service runs it), and the
overheads in milliseconds. Alternates the three in rounds so drift hits all.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from common import log, percentiles, write_json

from ragkit.query import (
    ContextShaperStage,
    FuserStage,
    QueryPipeline,
    QueryTransformStage,
    RerankerStage,
    RetrieverStage,
)
from ragkit.query.stages import merge_hits
from ragkit.query.state import CandidateList, Query, QueryState
from ragkit.registry import register
from ragkit.schema import Chunk, Hit
from ragkit.stores.faiss_store import FaissStore

DIM = 384


@register("retriever", "bench-fixed-vector")
class FixedVectorRetriever(RetrieverStage):
    """Searches the store with one fixed vector per query (no embedding)."""

    store: Any = None
    vector: Any = None

    def retrieve_many(self, collection: Any, queries: Sequence[Query], top_k: int, filters: Any) -> list[list[Hit]]:
        """The store's answer for the fixed vector, once per query."""
        return self.store.search(np.repeat(self.vector, len(queries), axis=0), top_k)


@register("query_transform", "bench-noop")
class NoopTransform(QueryTransformStage):
    """Adds no query."""

    def transform_many(self, states: Sequence[QueryState]) -> list[list[Query]]:
        """Nothing new per question."""
        return [[] for _ in states]


@register("fuser", "bench-noop")
class NoopFuser(FuserStage):
    """Merges the lists and keeps the first list's order."""

    def fuse(self, lists: Sequence[CandidateList]) -> list[Hit]:
        """The merged hits in first-seen order."""
        return list(merge_hits(lists).values())


@register("reranker", "bench-noop")
class NoopReranker(RerankerStage):
    """Keeps the order."""

    def rerank_many(self, states: Sequence[QueryState], hit_lists: Sequence[list[Hit]]) -> list[list[Hit]]:
        """The lists unchanged."""
        return [list(hits) for hits in hit_lists]


@register("context_shaper", "bench-noop")
class NoopShaper(ContextShaperStage):
    """Keeps the hits."""

    def shape_many(self, states: Sequence[QueryState]) -> list[list[Hit]]:
        """The hits unchanged."""
        return [list(s.hits) for s in states]


def _store(folder: Path, n: int) -> FaissStore:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(f"c{i}", f"d{i // 10}", f"doc{i // 10}.md", f"text {i}", 0, 7) for i in range(n)]
    store = FaissStore(path=folder, dimension=DIM, name="bench")
    store.upsert(chunks, vectors)
    store.flush()
    return store


def main() -> None:
    """Measure and print the overheads; write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=2_000, help="queries per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp) / "store", args.vectors)
        vector = np.random.default_rng(1).standard_normal((1, DIM)).astype(np.float32)
        vector /= np.linalg.norm(vector)
        pipeline = QueryPipeline.from_configs(
            [
                {"type": "bench-noop", "role": "query_transform", "name": "t"},
                "bench-fixed-vector",
                {"type": "bench-noop", "role": "fuser", "name": "f"},
                {"type": "bench-noop", "role": "reranker", "name": "r"},
                {"type": "bench-noop", "role": "context_shaper", "name": "s"},
            ],
            top_k=args.top_k,
        )
        retriever = pipeline.stages[1]
        assert isinstance(retriever, FixedVectorRetriever)
        retriever.store, retriever.vector = store, vector
        collection: Any = object()  # the fixed-vector retriever never looks at it

        def direct() -> None:
            store.search(vector, args.top_k)

        def sync_pipeline() -> None:
            pipeline.search("q", collection)

        async def async_pipeline() -> None:
            await pipeline.asearch("q", collection)

        loop = asyncio.new_event_loop()
        timings: dict[str, list[float]] = {"store": [], "pipeline_sync": [], "pipeline_async": []}
        for _ in range(200):  # warm-up
            direct()
            sync_pipeline()
            loop.run_until_complete(async_pipeline())
        for round_number in range(args.rounds):
            log(f"round {round_number + 1}/{args.rounds}")
            for _ in range(args.queries):
                began = time.perf_counter()
                direct()
                middle = time.perf_counter()
                sync_pipeline()
                end = time.perf_counter()
                loop.run_until_complete(async_pipeline())
                timings["store"].append(middle - began)
                timings["pipeline_sync"].append(end - middle)
                timings["pipeline_async"].append(time.perf_counter() - end)
        loop.close()
        store.close()

    stats = {name: percentiles(values) for name, values in timings.items()}
    overhead_sync = stats["pipeline_sync"]["p50_ms"] - stats["store"]["p50_ms"]
    overhead_async = stats["pipeline_async"]["p50_ms"] - stats["store"]["p50_ms"]
    result = {
        "stages": [s.to_config()["type"] for s in pipeline.stages],
        "vectors": args.vectors,
        "top_k": args.top_k,
        "latency": stats,
        "overhead_ms_p50": {"sync": round(overhead_sync, 4), "async": round(overhead_async, 4)},
        "target_ms": 0.5,
    }
    print("| variant | p50 ms | p99 ms |\n| --- | --- | --- |")
    for name, values in stats.items():
        print(f"| {name} | {values['p50_ms']:.4f} | {values['p99_ms']:.4f} |")
    print(
        f"\nstage machinery overhead at p50: sync {overhead_sync:.4f} ms, async {overhead_async:.4f} ms (target < 0.5)"
    )
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
