"""Annoy against FAISS: recall@10, p50 search latency, build time and index size.

Run (each step appends to ``WORK/annoy-N-DATA.json`` and is skipped when
already there, so an interrupted run resumes)::

    nice -n 10 .venv/bin/python connectors/annoy/benchmarks/bench_annoy.py --n 100000 --work bench-out/annoy

Indexes, on the same vectors, in this process one after the other (each
freed before the next, so memory stays near twice the data; HNSW, the
slowest to build, last):

* ``faiss-flat``: exact inner product (FAISS ``IndexFlatIP``), the ground truth;
* ``faiss-hnsw``: FAISS ``IndexHNSWFlat`` (M 32, efConstruction 40, efSearch
  96 and 256), the approximate index a user would otherwise pick
  (ragkit's ``store: {type: faiss, index: hnsw}``);
* ``annoy``: built the way ``store: {type: annoy}`` builds it (the
  connector's own builder, every core), searched the way the store searches:
  Annoy's candidates rescored with the exact inner product.

Data (``--data``): ``clustered`` (default) is embeddings-like: the seeded
mixture of 2,000 Gaussian clusters on the unit sphere of
``evaluation/benchmarks/store_bench.py`` (the "Vector stores at scale"
section), queries held out and drawn the same way; ``random`` is random
normalised vectors (no structure: the worst case for every ANN index).
Latency: one query at a time, one thread, top 10, p50 over ``--queries``,
as wall time and as the thread's CPU time (which leaves out waiting for a
core on a loaded machine); the settings of one index take turns query by
query. Ratios use the CPU time.
Build: wall time with every core. Size: the index as saved to disk.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from ragkit_annoy import _annoy

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "evaluation" / "benchmarks"))
import store_bench  # the shared synthetic data

TOP_K = 10
DIM = store_bench.DIM


def log(message: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def data(n: int, kind: str) -> np.ndarray:
    """The ``n`` data vectors (float32, unit length)."""
    out = np.empty((n, DIM), dtype=np.float32)
    if kind == "clustered":
        for start, vectors, _ in store_bench.blocks(n):
            out[start : start + len(vectors)] = vectors
        return out
    rng = np.random.default_rng(1)
    for start in range(0, n, 100_000):
        part = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        out[start : start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def queries(count: int, kind: str) -> np.ndarray:
    """Held-out query vectors, drawn like the data."""
    if kind == "clustered":
        held_out: np.ndarray = store_bench.queries(count)
        return held_out
    part = np.random.default_rng(2).standard_normal((count, DIM), dtype=np.float32)
    unit: np.ndarray = part / np.linalg.norm(part, axis=1, keepdims=True)
    return unit


def p50_ms(searches: Mapping[str, Callable[[np.ndarray], Any]], xq: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per named search: median single-query wall and CPU time in ms, and each query's results.

    The searches take turns query by query, so a shared machine's changing
    load falls on all of them alike. The CPU time (the thread's own, every
    search here runs in one thread) does not count the time the query waited
    for a core, which on a loaded machine inflates every query longer than a
    scheduler time slice.
    """
    wall: dict[str, list[float]] = {name: [] for name in searches}
    cpu: dict[str, list[float]] = {name: [] for name in searches}
    results: dict[str, list[Any]] = {name: [] for name in searches}
    for q in xq:
        for name, search in searches.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            results[name].append(search(q))
            cpu[name].append(time.thread_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return {
        name: {
            "p50_ms": statistics.median(wall[name]) * 1000,
            "cpu_p50_ms": statistics.median(cpu[name]) * 1000,
            "results": results[name],
        }
        for name in searches
    }


def recall(found: list[Any], truth: np.ndarray) -> float:
    """Mean share of the true top 10 found."""
    shares = [
        len(set(np.asarray(f)[:TOP_K].tolist()) & set(t.tolist())) / TOP_K for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(shares))


def faiss_size(index: Any) -> int:
    """Bytes of the index as FAISS saves it."""
    return len(faiss.serialize_index(index))


def run_flat(xb: np.ndarray, xq: np.ndarray, latency_queries: int) -> tuple[dict[str, Any], np.ndarray]:
    """Exact search: its timings, and the true top 10 of every query."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    index = faiss.IndexFlatIP(DIM)
    index.add(xb)
    build = time.perf_counter() - start
    _, truth = index.search(xq, TOP_K)  # batched, every core: the ground truth
    faiss.omp_set_num_threads(1)
    timed = p50_ms({"flat": lambda q: index.search(q[None, :], TOP_K)[1][0]}, xq[:latency_queries])["flat"]
    result = {"build_s": build, "p50_ms": timed["p50_ms"], "cpu_p50_ms": timed["cpu_p50_ms"], "recall@10": 1.0}
    result |= {"size_bytes": xb.nbytes, "queries": latency_queries}
    return result, truth


def run_hnsw(xb: np.ndarray, xq: np.ndarray, truth: np.ndarray, ef_searches: list[int]) -> dict[str, Any]:
    """FAISS HNSW: build, size, and p50 and recall at each efSearch."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    index.add(xb)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    out: dict[str, Any] = {"build_s": build, "size_bytes": faiss_size(index), "M": 32, "efConstruction": 40}

    def search(q: np.ndarray, ef: int) -> np.ndarray:
        index.hnsw.efSearch = ef
        found: np.ndarray = index.search(q[None, :], TOP_K)[1][0]
        return found

    timed = p50_ms({f"efSearch={ef}": functools.partial(search, ef=ef) for ef in ef_searches}, xq)
    for name, point in timed.items():
        out[name] = {
            "p50_ms": point["p50_ms"],
            "cpu_p50_ms": point["cpu_p50_ms"],
            "recall@10": recall(point["results"], truth),
        }
    return out


def run_annoy(xb: np.ndarray, xq: np.ndarray, truth: np.ndarray, n_trees: int, search_ks: list[int]) -> dict[str, Any]:
    """Annoy as the store builds and searches it: build, size, and p50 and recall at each search_k."""
    start = time.perf_counter()
    index = _annoy.new_index(xb, "angular", n_trees, seed=1, n_jobs=-1)
    build = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.annoy"
        index.save(str(path))
        size = path.stat().st_size
        out: dict[str, Any] = {"build_s": build, "size_bytes": size, "n_trees": n_trees}

        def search(q: np.ndarray, search_k: int) -> np.ndarray:
            items = np.asarray(index.get_nns_by_vector(q.tolist(), TOP_K, search_k), dtype=np.int64)
            scores = xb[items] @ q  # the store's exact rescoring
            return items[np.argsort(-scores, kind="stable")]

        searches = {
            f"search_k={n_trees * TOP_K if k == -1 else k}": functools.partial(search, search_k=k) for k in search_ks
        }
        for name, point in p50_ms(searches, xq).items():
            out[name] = {
                "p50_ms": point["p50_ms"],
                "cpu_p50_ms": point["cpu_p50_ms"],
                "recall@10": recall(point["results"], truth),
            }
        index.unload()
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the steps not yet in the results file, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="data vectors")
    parser.add_argument("--queries", type=int, default=1000, help="queries timed and scored")
    parser.add_argument("--flat-queries", type=int, default=200, help="queries timed on the (slow) exact index")
    parser.add_argument("--data", choices=["clustered", "random"], default="clustered")
    parser.add_argument("--n-trees", default="50,100", help="Annoy forests to build (comma-separated)")
    parser.add_argument("--search-k", default="-1,2000,10000", help="Annoy search_k values (-1: n_trees * 10)")
    parser.add_argument("--ef-search", default="96,256", help="FAISS HNSW efSearch values")
    parser.add_argument("--work", type=Path, required=True, help="folder for the results (resumable)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results_file = args.work / f"annoy-{args.n}-{args.data}.json"
    truth_file = args.work / f"truth-{args.n}-{args.data}-{args.queries}.npy"
    results: dict[str, Any] = json.loads(results_file.read_text()) if results_file.exists() else {}
    setup = {"n": args.n, "dim": DIM, "data": args.data, "queries": args.queries, "cpus": os.cpu_count()}
    results.setdefault("setup", setup)

    def save(key: str, value: dict[str, Any]) -> None:
        value["load_average"] = [round(x, 2) for x in os.getloadavg()]
        results[key] = value
        results_file.write_text(json.dumps(results, indent=1))
        log(f"{key}: {json.dumps(value)}")

    log(f"generating {args.n} {args.data} vectors")
    xb = data(args.n, args.data)
    xq = queries(args.queries, args.data)
    if "faiss-flat" not in results or not truth_file.exists():
        flat, truth = run_flat(xb, xq, min(args.flat_queries, args.queries))
        np.save(truth_file, truth)
        save("faiss-flat", flat)
    truth = np.load(truth_file)
    for n_trees in (int(x) for x in args.n_trees.split(",")):
        if f"annoy-{n_trees}" not in results:
            save(f"annoy-{n_trees}", run_annoy(xb, xq, truth, n_trees, [int(x) for x in args.search_k.split(",")]))
    if "faiss-hnsw" not in results:
        save("faiss-hnsw", run_hnsw(xb, xq, truth, [int(x) for x in args.ef_search.split(",")]))
    print(report(results))
    return 0


def report(results: dict[str, Any]) -> str:
    """A markdown table: recall against exact search; CPU-time ratios against FAISS flat and HNSW (first efSearch)."""
    setup = results["setup"]
    flat = results["faiss-flat"]
    hnsw = results.get("faiss-hnsw")
    base = next(v for k, v in hnsw.items() if k.startswith("efSearch=")) if hnsw else None

    def ms(point: dict[str, Any], key: str) -> str:
        return f"{point[key]:.3f}" if key in point else "–"

    def ratio(value: float | None, of: dict[str, Any] | None, key: str) -> str:
        return "–" if value is None or of is None or key not in of else f"{value / of[key]:.2f}"

    rows = [
        f"{setup['n']:,} {setup['data']} {setup['dim']}-d vectors, {setup['queries']} queries, top {TOP_K}",
        "",
        "| index | build s | size MB | p50 ms wall | p50 ms CPU | recall@10 | CPU p50 / flat | CPU p50 / HNSW "
        "| build / HNSW | size / HNSW |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| faiss flat (exact) | {flat['build_s']:.1f} | {flat['size_bytes'] / 1e6:.0f} | {ms(flat, 'p50_ms')} "
        f"| {ms(flat, 'cpu_p50_ms')} | 1.000 | 1.00 | {ratio(flat.get('cpu_p50_ms'), base, 'cpu_p50_ms')} | – "
        f"| {ratio(flat['size_bytes'], hnsw, 'size_bytes')} |",
    ]
    for key, value in results.items():
        if key != "faiss-hnsw" and not key.startswith("annoy-"):
            continue
        label = "faiss hnsw M 32" if key == "faiss-hnsw" else f"annoy {value['n_trees']} trees"
        for setting, point in value.items():
            if not isinstance(point, dict):
                continue
            cpu = point.get("cpu_p50_ms")
            rows.append(
                f"| {label}, {setting} | {value['build_s']:.1f} | {value['size_bytes'] / 1e6:.0f} "
                f"| {ms(point, 'p50_ms')} | {ms(point, 'cpu_p50_ms')} | {point['recall@10']:.3f} "
                f"| {ratio(cpu, flat, 'cpu_p50_ms')} | {ratio(cpu, base, 'cpu_p50_ms')} "
                f"| {ratio(value['build_s'], hnsw, 'build_s')} | {ratio(value['size_bytes'], hnsw, 'size_bytes')} |"
            )
    loads = {key: value["load_average"] for key, value in results.items() if "load_average" in value}
    rows += ["", f"load average (1, 5, 15 min) after each step: {json.dumps(loads)}"]
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
