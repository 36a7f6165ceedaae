"""Chroma (embedded, and a ``chroma run`` server on loopback) against the built-in FAISS store on the same chunks.

Run: .venv/bin/python connectors/chroma/benchmarks/bench_store.py [N] [DIM] [--no-server]

Writes ``N`` chunks (default 500: a few hundred, a small collection) of
about 850 characters with random unit vectors of length ``DIM`` (default
384, the packaged embedder's), then measures ingest time, single-query
search latency (no filter, a filter on ``source``, a filter on metadata), a
batch of 100 queries, and recall@10 against exact search (FAISS's index is
exact at this size). Prints one JSON object per store, then each Chroma
time as a ratio of FAISS's.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from ragkit_chroma import ChromaStore

from ragkit.filters import parse_filter
from ragkit.protocols import VectorStore
from ragkit.schema import Chunk
from ragkit.stores.faiss_store import FaissStore

BATCH = 500
TEXT = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 15  # about 850 characters, a typical chunk
_START = "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; sys.exit(app())"


def corpus(n: int, dim: int) -> tuple[list[Chunk], np.ndarray]:
    """``n`` chunks with a little metadata, and random unit vectors."""
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


def bench(label: str, make: Callable[[Path], VectorStore], n: int, dim: int, repeats: int) -> dict[str, Any]:
    """Ingest ``n`` chunks into a fresh store made by ``make``, then time searches."""
    chunks, vectors = corpus(n, dim)
    queries = np.random.default_rng(1).normal(size=(100, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    with tempfile.TemporaryDirectory() as folder:
        store = make(Path(folder) / "store")
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            store.upsert(chunks[i : i + BATCH], vectors[i : i + BATCH])
        store.flush()
        ingest_s = time.perf_counter() - start
        found = store.search(queries, top_k=10)
        recall = np.mean(
            [
                len({h.chunk.id for h in hits} & {chunks[j].id for j in row}) / 10
                for hits, row in zip(found, exact, strict=True)
            ]
        )
        by_source = parse_filter('source == "file-3.md"')
        by_metadata = parse_filter('page >= 45 and lang == "en"')
        result = {
            "store": label,
            "chunks": n,
            "dimension": dim,
            "ingest_s": round(ingest_s, 3),
            "search_ms": latency_ms(lambda: store.search(queries[:1], top_k=10), repeats),
            "search_source_filter_ms": latency_ms(
                lambda: store.search(queries[:1], top_k=10, filter=by_source), repeats
            ),
            "search_metadata_filter_ms": latency_ms(
                lambda: store.search(queries[:1], top_k=10, filter=by_metadata), repeats
            ),
            "batch_100_queries_ms": latency_ms(lambda: store.search(queries, top_k=10), max(1, repeats // 5)),
            "recall_at_10": round(float(recall), 4),
        }
        close = getattr(store, "drop", None) if label == "chroma-server" else None
        (close or store.close)()
    return result


@contextmanager
def chroma_server() -> Iterator[str]:
    """A ``chroma run`` server on a free loopback port, stopped when done; its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen(
            [sys.executable, "-c", _START, "run", "--path", folder, "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the Chroma server did not start") from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def main(argv: list[str]) -> list[dict[str, Any]]:
    """Benchmark each store; print one JSON line per store, then the ratios to FAISS."""
    args = [a for a in argv if not a.startswith("--")]
    n = int(args[0]) if args else 500
    dim = int(args[1]) if len(args) > 1 else 384
    repeats = 30 if n >= 200 else 3
    print(json.dumps({"load_average": [round(x, 1) for x in os.getloadavg()]}), flush=True)
    results = [
        bench("faiss", lambda p: FaissStore(path=p, dimension=dim), n, dim, repeats),
        bench("chroma-embedded", lambda p: ChromaStore(path=p, dimension=dim, name="bench"), n, dim, repeats),
    ]
    print(json.dumps(results[0]), flush=True)
    print(json.dumps(results[1]), flush=True)
    if "--no-server" not in argv:
        with chroma_server() as url:
            make = lambda p: ChromaStore(path=p, dimension=dim, name="bench", url=url)  # noqa: E731
            results.append(bench("chroma-server", make, n, dim, repeats))
        print(json.dumps(results[-1]), flush=True)
    faiss = results[0]
    for other in results[1:]:
        ratios = {
            key: round(other[key] / faiss[key], 1) if faiss[key] else None
            for key in ("ingest_s", "search_ms", "search_source_filter_ms", "search_metadata_filter_ms")
        }
        print(json.dumps({"ratio_to_faiss": other["store"], **ratios}), flush=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
