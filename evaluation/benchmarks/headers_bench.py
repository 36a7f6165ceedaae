"""Contextual chunk headers on squad-dev: answer-hit@1/@5 with and without them.

Two collections of the same articles, same splitter and embedder (the
packaged all-MiniLM-L6-v2): one plain, one with ``chunk_headers: true`` (each
chunk embedded and BM25-indexed behind its article title and heading path).
On an even sample of questions: dense search, BM25, and RRF(dense top-20 +
BM25 top-20) through the query pipeline, each scored by answer-hit@k (a gold
answer string inside one of the top-k chunk texts; the texts are the plain
chunks in both collections).

    python evaluation/benchmarks/headers_bench.py                 # all 48 articles, 200 questions
    python evaluation/benchmarks/headers_bench.py --max-docs 8    # a quicker subset

Collections live under ``--work`` (``/tmp/ragkit-headers-bench``); each run
ingests afresh. Prints a Markdown table and writes ``results.json`` there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log

DENSE = {"type": "dense", "top_k": 20}
LEXICAL = {"type": "lexical", "top_k": 20}
TOP_K = 5
VARIANTS = {"plain": False, "headers": True}


def _ingest(name: str, headers: bool, documents: Path, store: Path) -> dict[str, Any]:
    """A fresh collection ``name`` holding ``documents``, with chunk headers on or off."""
    from ragkit import Collection
    from ragkit.ingest import IngestPipeline
    from ragkit.loaders import LoaderSet

    if name in Collection.names(store):
        Collection.delete(name, store_dir=store)
    with Collection.create(name, {"chunk_headers": headers}, store_dir=store) as collection:
        started = time.perf_counter()
        # the collection's own ingest, spelled out so the header option is passed whichever
        # version of Collection.ingest is installed
        pipeline = IngestPipeline(
            LoaderSet(collection.config.loader),
            collection.splitter,
            collection.embedder,
            collection.store,
            batch_size=collection.config.embed_batch_size,
            chunk_headers=collection.config.chunk_headers,
        )
        report = pipeline.run([documents])
        collection.lexical.rebuild(collection.store.iter_chunks(5000))
        if report.failed:
            raise SystemExit(f"{name}: ingest failed: {report.failed}")
        sample = next(iter(collection.store.iter_chunks(1)))[0]
        result = {
            "chunks": report.chunks_written,
            "embedded": report.chunks_embedded,
            "ingest_s": round(time.perf_counter() - started, 2),
            "sample_header": sample.metadata.get("chunk_header"),
        }
    log(f"{name}: {result['chunks']} chunks in {result['ingest_s']} s")
    return result


def _evaluate(name: str, store: Path, questions: list[dict[str, Any]]) -> dict[str, Any]:
    """answer-hit@1/@5 of dense, BM25 and RRF over one collection."""
    from ragkit import Collection
    from ragkit.query import QueryPipeline

    texts = [q["question"] for q in questions]
    pipelines = {
        "dense": QueryPipeline.from_configs([DENSE], top_k=TOP_K),
        "lexical": QueryPipeline.from_configs([LEXICAL], top_k=TOP_K),
        "rrf": QueryPipeline.from_configs([DENSE, LEXICAL, "rrf"], top_k=TOP_K),
    }
    out: dict[str, Any] = {}
    with Collection.open(name, store_dir=store) as collection:
        for label, pipeline in pipelines.items():
            results = pipeline.search_many(texts, collection)
            out[label] = common.answer_hits(questions, [[h.chunk.text for h in r.hits] for r in results])
            log(f"{name} {label}: hit@1 {out[label]['hit@1']}, hit@5 {out[label]['hit@5']}")
    return out


def _table(quality: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| retriever | headers | answer-hit@1 | answer-hit@5 |",
        "| --- | --- | --- | --- |",
    ]
    names = {"dense": "dense", "lexical": "BM25", "rrf": "RRF(dense + BM25)"}
    for retriever, label in names.items():
        for variant, result in quality.items():
            hits = result[retriever]
            rows.append(
                f"| {label} | {'on' if VARIANTS[variant] else 'off'} | {hits['hit@1']:.3f} | {hits['hit@5']:.3f} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_subset_arguments(parser, work="/tmp/ragkit-headers-bench")
    args = parser.parse_args(argv)

    work, documents, names, questions = common.subset(args)
    store = work / "store"
    log(f"{len(names)} articles, {len(questions)} questions")

    ingest: dict[str, dict[str, Any]] = {}
    quality: dict[str, dict[str, Any]] = {}
    for variant, headers in VARIANTS.items():
        name = f"squad-{variant}"
        ingest[variant] = _ingest(name, headers, documents, store)
        quality[variant] = _evaluate(name, store, questions)

    results = {
        "machine": common.machine(),
        "versions": common.versions(["ragkit", "sentence-transformers", "torch", "faiss-cpu", "bm25s"]),
        "articles": len(names),
        "questions": len(questions),
        "ingest": ingest,
        "retrieval": quality,
    }
    common.write_json(work / "results.json", results)
    print(_table(quality))


if __name__ == "__main__":
    main()
