"""Milvus Lite (flat, HNSW) against the built-in FAISS store on the same few thousand vectors.

Run: .venv/bin/python connectors/milvus/benchmarks/bench_store.py [N] [DIM]
Measures upsert rate, single-query search latency (no filter, a filter on
``source``, a filter on a metadata field), a batch of 100 queries, and the
time to reopen. Prints one JSON object per store.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ragkit_milvus import MilvusStore

from ragkit.filters import parse_filter
from ragkit.protocols import VectorStore
from ragkit.schema import Chunk
from ragkit.stores.faiss_store import FaissStore

BATCH = 500
TEXT = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 15  # about 850 characters, a typical chunk


def corpus(n: int, dim: int) -> tuple[list[Chunk], np.ndarray]:
    """``n`` chunks of about 850 characters with a little metadata, and random unit vectors."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        Chunk(
            id=f"chunk-{i:06d}",
            document_id=f"doc-{i // 20}",
            source=f"file-{i % 10}.md",
            text=TEXT,
            start=0,
            end=len(TEXT),
            metadata={"page": i % 50, "lang": ("en", "de")[i % 2], "section": "Intro"},
        )
        for i in range(n)
    ]
    return chunks, vectors


def latency_ms(search: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``search()`` over ``repeats`` calls, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        search()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def bench(label: str, make: Callable[[Path], VectorStore], n: int, dim: int) -> dict[str, Any]:
    """Write ``n`` vectors into a fresh store made by ``make``, then time searches and a reopen."""
    chunks, vectors = corpus(n, dim)
    queries = np.random.default_rng(1).normal(size=(100, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "store"
        store = make(path)
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            store.upsert(chunks[i : i + BATCH], vectors[i : i + BATCH])
        store.flush()
        upsert_s = time.perf_counter() - start
        by_source = parse_filter('source == "file-3.md"')
        by_metadata = parse_filter("page >= 45")
        result = {
            "store": label,
            "vectors": n,
            "dimension": dim,
            "upsert_per_s": round(n / upsert_s),
            "search_ms": latency_ms(lambda: store.search(queries[:1], top_k=10), 30),
            "search_source_filter_ms": latency_ms(lambda: store.search(queries[:1], top_k=10, filter=by_source), 30),
            "search_metadata_filter_ms": latency_ms(
                lambda: store.search(queries[:1], top_k=10, filter=by_metadata), 10
            ),
            "batch_100_queries_ms": latency_ms(lambda: store.search(queries, top_k=10), 5),
        }
        store.close()
        start = time.perf_counter()
        store = make(path)
        store.search(queries[:1], top_k=10)
        result["reopen_and_search_ms"] = round((time.perf_counter() - start) * 1000, 1)
        store.close()
    return result


def main() -> None:
    """Benchmark each store and print one JSON line per store."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    dim = int(sys.argv[2]) if len(sys.argv) > 2 else 384
    stores: dict[str, Callable[[Path], VectorStore]] = {
        "faiss": lambda p: FaissStore(path=p, dimension=dim),
        "milvus-lite-flat": lambda p: MilvusStore(path=p, dimension=dim, name="bench"),
        "milvus-lite-hnsw": lambda p: MilvusStore(path=p, dimension=dim, name="bench", index="hnsw"),
    }
    for label, make in stores.items():
        print(json.dumps(bench(label, make, n, dim)), flush=True)


if __name__ == "__main__":
    main()
