"""Vector stores at scale: synthetic 384-d vectors with metadata into FAISS and Milvus Lite.

Three steps, each in its own process (``run_all.py`` runs them in order)::

    python evaluation/benchmarks/store_bench.py truth  --n 1000000 --work W --out W/truth.json
    python evaluation/benchmarks/store_bench.py insert --store faiss --n 1000000 --work W --out W/faiss-insert.json
    python evaluation/benchmarks/store_bench.py search --store faiss --n 1000000 --work W --out W/faiss-search.json

``truth`` computes the exact top-10 (brute force, FAISS flat) of every query,
unfiltered and under each filter. ``insert`` writes the vectors through the
store's ``upsert`` in batches and flushes. ``search`` opens the store in a
fresh process (so the resident-memory delta is the loaded store's alone),
times single-query searches with and without a metadata filter, and scores
recall@10 against ``truth``.

The data: a seeded mixture of Gaussian clusters on the unit sphere; each
vector has a ``category`` (20 values), a ``year`` (2000-2024) and a ``lang``
(en 50 %, de 20 %, fr 15 %, es 10 %, ja 5 %). Every process regenerates the
same data from the seed, block by block, so nothing large is passed around.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log

DIM = 384
CLUSTERS = 2000
SEED = 20251123
BLOCK = 10_000
"""Vectors generated (and inserted) per batch."""
NOISE = 1.0 / np.sqrt(DIM)
"""Per-dimension noise: a point's offset from its cluster centre is about as long as the centre."""
TOP_K = 10
MIN_QUERIES = 5
"""Timed per filter even when that takes longer than the time budget."""
CATEGORIES = [f"c{i:02d}" for i in range(20)]
LANGS = ["en", "de", "fr", "es", "ja"]
LANG_P = [0.5, 0.2, 0.15, 0.1, 0.05]
FILTERS = {
    "none": None,
    "selective": "year == 2020",  # 1 of 25 years: ~4 %
    "broad": 'lang == "en"',  # ~50 %
}
STORE_OPTIONS = {
    "faiss": {"index": "auto", "approximate_threshold": 100_000, "nlist": None, "nprobe": 48},
    "milvus": {},
}


# -- the data ------------------------------------------------------------------------------


def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


@functools.cache
def centres() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return _normalise(rng.standard_normal((CLUSTERS, DIM), dtype=np.float32))


def block(number: int, size: int, stream: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Vectors ``number*BLOCK ...`` (stream 0: the data; stream 1: the held-out queries)."""
    rng = np.random.default_rng([SEED, stream, number])
    labels = rng.integers(0, CLUSTERS, size)
    vectors = centres()[labels] + rng.standard_normal((size, DIM), dtype=np.float32) * np.float32(NOISE)
    meta = {
        "category": rng.integers(0, len(CATEGORIES), size),
        "year": rng.integers(2000, 2025, size),
        "lang": rng.choice(len(LANGS), size=size, p=LANG_P),
    }
    return _normalise(vectors.astype(np.float32)), meta


def blocks(n: int) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
    """The first ``n`` data vectors, as (offset, vectors, metadata columns) blocks."""
    for number, start in enumerate(range(0, n, BLOCK)):
        vectors, meta = block(number, min(BLOCK, n - start))
        yield start, vectors, meta


def queries(count: int) -> np.ndarray:
    """Held-out points drawn like the data (never inserted)."""
    vectors, _ = block(0, count, stream=1)
    return vectors


def matches(name: str, meta: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean mask of the rows a named filter keeps (mirrors ``FILTERS``)."""
    size = len(meta["year"])
    if name == "none":
        return np.ones(size, dtype=bool)
    if name == "selective":
        return meta["year"] == 2020
    if name == "broad":
        return meta["lang"] == LANGS.index("en")
    raise ValueError(name)


def chunk_metadata(meta: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    return {
        "category": CATEGORIES[int(meta["category"][i])],
        "year": int(meta["year"][i]),
        "lang": LANGS[int(meta["lang"][i])],
    }


# -- step 1: exact answers -----------------------------------------------------------------------


def run_truth(args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    work = Path(args.work)
    q = queries(args.queries)
    indexes = {name: faiss.IndexFlatIP(DIM) for name in FILTERS}
    id_maps: dict[str, list[np.ndarray]] = {name: [] for name in FILTERS}
    t0 = time.perf_counter()
    for start, vectors, meta in blocks(args.n):
        for name in FILTERS:
            mask = matches(name, meta)
            indexes[name].add(vectors[mask])
            id_maps[name].append(np.flatnonzero(mask) + start)
        if start and start % 200_000 == 0:
            log(f"truth: generated {start:,} of {args.n:,} vectors")
    generated = time.perf_counter() - t0
    result: dict[str, Any] = {"n": args.n, "queries": len(q), "generate_s": round(generated, 2), "filters": {}}
    arrays = {}
    for name, index in indexes.items():
        t1 = time.perf_counter()
        _, positions = index.search(q, TOP_K)
        ids = np.concatenate(id_maps[name])[positions]
        arrays[name] = ids
        result["filters"][name] = {
            "expression": FILTERS[name],
            "matching": int(index.ntotal),
            "share": round(index.ntotal / args.n, 4),
            "exact_search_s": round(time.perf_counter() - t1, 2),
        }
        log(f"truth: {name}: {index.ntotal:,} matching vectors, exact top-{TOP_K} of {len(q)} queries")
    np.savez(truth_file(work, args.n), **arrays)
    return result


def truth_file(work: Path, n: int) -> Path:
    """Where the exact answers over the first ``n`` vectors are kept."""
    return work / f"truth-{n}.npz"


# -- step 2: insert ---------------------------------------------------------------------------------


def open_store(kind: str, work: Path) -> Any:
    folder = work / f"{kind}-store"
    if kind == "faiss":
        from ragkit.stores.faiss_store import FaissStore

        return FaissStore(path=folder, dimension=DIM, name="scale", **STORE_OPTIONS["faiss"])
    if kind == "milvus":
        from ragkit_milvus import MilvusStore

        folder.mkdir(parents=True, exist_ok=True)
        return MilvusStore(path=str(folder / "milvus.db"), dimension=DIM, name="scale", **STORE_OPTIONS["milvus"])
    raise ValueError(kind)


def run_insert(args: argparse.Namespace) -> dict[str, Any]:
    import shutil

    from ragkit.schema import Chunk

    work = Path(args.work)
    folder = work / f"{args.store}-store"
    if folder.exists():
        shutil.rmtree(folder)
    rss0 = common.rss_bytes()
    store = open_store(args.store, work)
    generate_s = upsert_s = 0.0
    slow_batches = []
    t_start = time.perf_counter()
    for start, vectors, meta in blocks(args.n):
        t0 = time.perf_counter()
        chunks = [
            Chunk(
                id=f"v{start + i}",
                document_id=f"d{(start + i) // 100}",
                source=f"synthetic/part-{start // BLOCK:04d}",
                text=f"synthetic vector {start + i}",
                start=0,
                end=0,
                metadata=chunk_metadata(meta, i),
            )
            for i in range(len(vectors))
        ]
        t1 = time.perf_counter()
        store.upsert(chunks, vectors)
        t2 = time.perf_counter()
        generate_s += t1 - t0
        upsert_s += t2 - t1
        if t2 - t1 > 5:
            slow_batches.append({"offset": start, "seconds": round(t2 - t1, 2)})
        done = start + len(vectors)
        if done % 100_000 == 0 or done == args.n:
            rate = done / upsert_s if upsert_s else 0
            log(f"insert {args.store}: {done:,} of {args.n:,} vectors, {rate:,.0f} vectors/s in upsert")
        if args.max_seconds and time.perf_counter() - t_start > args.max_seconds:
            log(f"insert {args.store}: stopping at {done:,} vectors: over --max-seconds {args.max_seconds}")
            break
    inserted = done
    t0 = time.perf_counter()
    store.flush()
    flush_s = time.perf_counter() - t0
    info = _store_info(store)
    peak = common.peak_rss_bytes()
    t0 = time.perf_counter()
    store.close()
    close_s = time.perf_counter() - t0
    disk = common.folder_bytes(folder)
    total = upsert_s + flush_s + close_s
    return {
        "store": args.store,
        "options": STORE_OPTIONS[args.store],
        "n_requested": args.n,
        "n": inserted,
        "batch": BLOCK,
        "upsert_s": round(upsert_s, 2),
        "flush_s": round(flush_s, 2),
        "close_s": round(close_s, 2),
        "chunk_objects_s": round(generate_s, 2),
        "insert_vectors_per_s": round(inserted / upsert_s, 1),
        "insert_vectors_per_s_with_flush": round(inserted / total, 1),
        "slow_batches": slow_batches[:20],
        "index": info,
        "peak_rss_bytes": peak,
        "rss_at_start_bytes": rss0,
        "disk_bytes": disk,
        "disk_bytes_per_vector": round(disk / inserted, 1),
    }


def _store_info(store: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"class": type(store).__name__}
    index = getattr(store, "_index", None)
    if index is not None:
        info["faiss_index"] = type(index).__name__
        for attr in ("nlist", "nprobe", "ntotal"):
            if hasattr(index, attr):
                info[attr] = int(getattr(index, attr))
        info["kind"] = getattr(store, "_active_kind", None)
    resolved = getattr(store, "_resolved_index", None)  # Milvus: what index="auto" became
    if callable(resolved):
        info["kind"] = resolved() + (" (Milvus Lite)" if getattr(store, "is_lite", False) else "")
    stats = getattr(store, "stats", None)
    if callable(stats):
        try:
            info["stats"] = stats()
        except Exception as exc:  # informative only
            info["stats_error"] = repr(exc)
    return info


# -- step 3: search ----------------------------------------------------------------------------------


def run_search(args: argparse.Namespace) -> dict[str, Any]:
    import gc

    from ragkit.filters import parse_filter

    work = Path(args.work)
    q = queries(args.queries)
    if args.store == "faiss":
        import faiss  # noqa: F401 - imported before the baseline, like the store's own imports
    else:
        import pymilvus  # noqa: F401
    gc.collect()
    rss_before = common.rss_bytes(children=True)
    t0 = time.perf_counter()
    store = open_store(args.store, work)
    open_s = time.perf_counter() - t0
    n = store.count()
    rss_open = common.rss_bytes(children=True)
    truth = np.load(truth_file(work, n))
    log(f"search {args.store}: opened {n:,} vectors in {open_s:.1f}s; RSS +{(rss_open - rss_before) / 2**20:.0f} MiB")

    result: dict[str, Any] = {"store": args.store, "n": n, "open_s": round(open_s, 2), "index": _store_info(store)}
    rss_loaded = rss_open
    for name, expression in FILTERS.items():
        flt = parse_filter(expression) if expression else None
        expected = truth[name]
        budget = args.max_seconds_per_filter
        timings, recalls = [], []
        started = time.perf_counter()
        try:
            for vector in q[-1:]:  # warm-up: a first call may load lazily built state
                store.search(vector[None, :], TOP_K, flt)
            for i, vector in enumerate(q):
                query = np.ascontiguousarray(vector[None, :])
                t1 = time.perf_counter()
                hits = store.search(query, TOP_K, flt)[0]
                timings.append(time.perf_counter() - t1)
                got = {int(h.chunk.id[1:]) for h in hits}
                recalls.append(len(got & set(expected[i].tolist())) / TOP_K)
                if budget and time.perf_counter() - started > budget and i + 1 >= MIN_QUERIES:
                    break
        except Exception as exc:  # a store bug: record it and go on with the next filter
            message = str(exc).strip().splitlines()[-1]
            error = f"{type(exc).__name__}: {message.rsplit('Error: ', 1)[-1][:300]}"
            result.setdefault("search", {})[name] = {"expression": expression, "error": error}
            log(f"search {args.store}: filter {name}: FAILED: {error}")
            continue
        entry = {
            "expression": expression,
            "latency": common.percentiles(timings),
            "recall@10": round(float(np.mean(recalls)), 4),
            "queries": len(timings),
            "seconds": round(time.perf_counter() - started, 2),
        }
        if len(timings) < len(q):
            entry["note"] = f"stopped after {budget}s: {len(timings)} of {len(q)} queries timed"
        result.setdefault("search", {})[name] = entry
        log(
            f"search {args.store}: filter {name}: p50 {entry['latency']['p50_ms']:.2f} ms, "
            f"p99 {entry['latency']['p99_ms']:.2f} ms, recall@10 {entry['recall@10']:.4f} ({len(timings)} queries)"
        )
        if name == "none":
            rss_loaded = common.rss_bytes(children=True)
            if args.store == "faiss":
                raw = store._index
                raw_t = []
                for vector in q:
                    query = np.ascontiguousarray(vector[None, :])
                    t1 = time.perf_counter()
                    raw.search(query, TOP_K)
                    raw_t.append(time.perf_counter() - t1)
                entry["raw_index_latency"] = common.percentiles(raw_t)
    rss_after = common.rss_bytes(children=True)
    delta = rss_loaded - rss_before
    result["memory"] = {
        "rss_before_open_bytes": rss_before,
        "rss_after_open_bytes": rss_open,
        "rss_after_unfiltered_search_bytes": rss_loaded,
        "rss_after_all_searches_bytes": rss_after,
        "resident_bytes_per_vector": round(delta / n, 1),
        "resident_overhead_bytes_per_vector": round(delta / n - DIM * 4, 1),
        "resident_overhead_after_filters_bytes_per_vector": round((rss_after - rss_before) / n - DIM * 4, 1),
    }
    store.close()
    disk = common.folder_bytes(work / f"{args.store}-store")
    result["disk_bytes"] = disk
    result["disk_bytes_per_vector"] = round(disk / n, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["truth", "insert", "search"])
    parser.add_argument("--store", choices=["faiss", "milvus"], default="faiss")
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors")
    parser.add_argument("--queries", type=int, default=1000, help="held-out query vectors")
    parser.add_argument("--work", default="bench-out/work", help="scratch folder (stores, exact answers)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--max-seconds", type=float, default=0, help="insert: stop after this long (0: no limit)")
    parser.add_argument(
        "--max-seconds-per-filter", type=float, default=90, help="search: stop timing a filter after this long"
    )
    args = parser.parse_args(argv)
    runners = {"truth": run_truth, "insert": run_insert, "search": run_search}
    return common.run_step(runners, args.step, args)


if __name__ == "__main__":
    raise SystemExit(main())
