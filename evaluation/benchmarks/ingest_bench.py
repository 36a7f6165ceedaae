"""Ingestion and retrieval over squad-dev, one pipeline per process.

Each subcommand runs one pipeline and writes one JSON file; ``run_all.py``
runs them one after another in fresh processes, so peak RSS
(``ru_maxrss``) belongs to that pipeline alone and no framework's imports
slow another.

    python evaluation/benchmarks/ingest_bench.py ragkit     --work W --out W/ragkit.json
    python evaluation/benchmarks/ingest_bench.py langchain  --work W --out W/langchain.json
    python evaluation/benchmarks/ingest_bench.py llamaindex --work W --out W/llamaindex.json
    python evaluation/benchmarks/ingest_bench.py encode --texts W/ragkit_chunks.json --precision fp32 --out W/enc.json
    python evaluation/benchmarks/ingest_bench.py reingest   --work W --out W/reingest.json

Every pipeline uses the packaged all-MiniLM-L6-v2 and its framework's
defaults otherwise; the model is loaded (and warmed with one short text)
before the clock starts, so "ingest" means reading, splitting, embedding
and storing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log

TOP_K = 5
WARMUP_TEXT = "A short text to warm the model up."


def _documents(args: argparse.Namespace) -> Path:
    """The folder every pipeline ingests: ``--documents``, else the dataset's own."""
    if args.documents:
        return Path(args.documents).resolve()
    return common.dataset_dir(args.dataset) / "documents"


def _questions(args: argparse.Namespace, documents: Path) -> list[dict[str, Any]]:
    """The questions about the documents being ingested (an even sample of ``--questions``)."""
    dataset = common.dataset_dir(args.dataset)
    names = [p.name for p in documents.iterdir() if p.is_file()]
    return common.load_questions(dataset, names, args.questions)


def _file_count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def _latency(search: Any, vectors: np.ndarray, warmup: int = 20) -> list[float]:
    """Per-query seconds of ``search(one_vector_2d)``, after ``warmup`` untimed calls."""
    for vector in vectors[:warmup]:
        search(vector[None, :])
    timings = []
    for vector in vectors:
        query = np.ascontiguousarray(vector[None, :], dtype=np.float32)
        t0 = time.perf_counter()
        search(query)
        timings.append(time.perf_counter() - t0)
    return timings


def _paired_latency(first: Any, second: Any, vectors: np.ndarray, warmup: int = 20) -> tuple[list[float], list[float]]:
    """Per-query seconds of two searches on the same vectors, alternating which runs first."""
    for vector in vectors[:warmup]:
        first(vector[None, :])
        second(vector[None, :])
    a_times, b_times = [], []
    for i, vector in enumerate(vectors):
        query = np.ascontiguousarray(vector[None, :], dtype=np.float32)
        order = ((first, a_times), (second, b_times)) if i % 2 == 0 else ((second, b_times), (first, a_times))
        for call, times in order:
            t0 = time.perf_counter()
            call(query)
            times.append(time.perf_counter() - t0)
    return a_times, b_times


def _ingest_numbers(files: int, chunks: int, seconds: float) -> dict[str, Any]:
    return {
        "files": files,
        "chunks": chunks,
        "seconds": round(seconds, 3),
        "documents_per_s": round(files / seconds, 4) if seconds else None,
        "chunks_per_s": round(chunks / seconds, 3) if seconds else None,
    }


def _inner_embedder(embedder: Any) -> Any:
    """The model embedder under ragkit's cache wrapper (whatever the attribute is called)."""
    seen = 0
    while seen < 5 and not hasattr(embedder, "precision"):
        for name in ("inner", "embedder", "_inner", "_embedder", "wrapped", "base"):
            candidate = getattr(embedder, name, None)
            if candidate is not None and candidate is not embedder:
                embedder = candidate
                break
        else:
            break
        seen += 1
    return embedder


def _effective_batch_size(embedder: Any) -> Any:
    """The encode batch size the embedder uses (``batch_size=None`` lets the connector choose by device)."""
    size = getattr(embedder, "batch_size", None)
    if size is None:
        try:
            from ragkit_sentence_transformers.selection import choose_batch_size

            return choose_batch_size(None, embedder.device)
        except (ImportError, AttributeError, TypeError):
            return None
    return size


# -- ragkit --------------------------------------------------------------------------------


def _setup(t_import: float, t_model: float, loaded: str = "load_model_s") -> dict[str, Any]:
    """What came before the clock: imports (``t_import`` to ``t_model``), loading and warming the model (from
    ``t_model`` to now, under the key ``loaded``), and the RSS they leave."""
    return {
        "import_s": round(t_model - t_import, 3),
        loaded: round(time.perf_counter() - t_model, 3),
        "rss_before_ingest_bytes": common.rss_bytes(),
    }


def run_ragkit(args: argparse.Namespace) -> dict[str, Any]:
    t_import = time.perf_counter()
    from ragkit import Collection

    documents = _documents(args)
    questions = _questions(args, documents)
    store_dir = Path(args.work) / "ragkit-home"
    if store_dir.exists():
        import shutil

        shutil.rmtree(store_dir)
    log(f"ragkit: creating a collection with the default config in {store_dir}")
    t_create = time.perf_counter()
    col = Collection.create("bench", config=None, store_dir=store_dir)
    embedder = col.embedder
    embedder.embed_documents([WARMUP_TEXT])  # the model is loaded by create(); this warms it like the others
    inner = _inner_embedder(embedder)
    setup = _setup(t_import, t_create, loaded="create_and_load_model_s")
    log(f"ragkit: ingesting {documents} ({_file_count(documents)} files)")
    t0 = time.perf_counter()
    report = col.ingest([documents])
    ingest_s = time.perf_counter() - t0
    peak = common.peak_rss_bytes()
    log(f"ragkit: {report.summary()}")
    first = _ingest_numbers(report.added + report.updated, report.chunks_written, ingest_s)
    first.update(report=report.to_dict(), peak_rss_bytes=peak, **setup)

    t0 = time.perf_counter()
    again = col.ingest([documents])
    reingest_s = time.perf_counter() - t0
    log(f"ragkit: re-ingest (same process): {again.summary()} in {reingest_s:.3f}s")

    texts: list[str] = []
    for batch in col.store.iter_chunks(2000):
        texts.extend(chunk.text for chunk in batch)
    texts_file = Path(args.work) / "ragkit_chunks.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    first["truncation"] = common.truncation(texts)

    retrieval = _ragkit_retrieval(col, questions, args)
    store_index = col.store.stats().get("index") if hasattr(col.store, "stats") else None
    col.close()
    return {
        "pipeline": "ragkit",
        "config": col.config.model_dump(mode="json"),
        "embedder": {
            "class": type(inner).__name__,
            "wrapper": type(embedder).__name__ if embedder is not inner else None,
            "precision": getattr(inner, "precision", None),
            "device": getattr(inner, "device", None),
            "batch_size": _effective_batch_size(inner),
        },
        "store_index": store_index,
        "torch_threads": common.torch_threads(),
        "ingest": first,
        "reingest_warm": {"seconds": round(reingest_s, 4), "report": again.to_dict()},
        "chunk_texts_file": str(texts_file),
        "chunk_chars_mean": round(float(np.mean([len(t) for t in texts])), 1) if texts else 0,
        "retrieval": retrieval,
    }


def _ragkit_retrieval(col: Any, questions: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    texts = [q["question"] for q in questions]
    result: dict[str, Any] = {}

    # end to end, one question at a time (embedding included); before the batch runs below,
    # so no query vector comes from the embedding cache
    e2e_questions = texts[-args.e2e_queries :] if args.e2e_queries else []
    log(f"ragkit: end-to-end latency over {len(e2e_questions)} single queries")
    for q in e2e_questions[:5]:
        col.search(q, top_k=TOP_K)
    timings = []
    for q in e2e_questions:
        t0 = time.perf_counter()
        col.search(q, top_k=TOP_K)
        timings.append(time.perf_counter() - t0)
    result["search_end_to_end"] = common.percentiles(timings)

    # the store's search against the raw FAISS call, on the same pre-embedded vectors
    sample = texts[: args.latency_queries]
    vectors = np.asarray(col.embedder.embed_queries(sample), dtype=np.float32)
    store = col.store
    raw_index = store._index
    log(f"ragkit: store search vs raw FAISS over {len(vectors)} pre-embedded queries ({type(raw_index).__name__})")
    store_t, raw_t = _paired_latency(lambda v: store.search(v, TOP_K), lambda v: raw_index.search(v, TOP_K), vectors)
    store_p, raw_p = common.percentiles(store_t), common.percentiles(raw_t)
    result["search_store"] = store_p
    result["search_raw_faiss"] = raw_p
    result["search_overhead_p50_ms"] = round(store_p["p50_ms"] - raw_p["p50_ms"], 4)
    result["raw_index"] = type(raw_index).__name__

    for mode in ("dense", "lexical"):
        log(f"ragkit: {mode} retrieval for {len(texts)} questions")
        t0 = time.perf_counter()
        hits = col.search_many(texts, top_k=TOP_K, mode=mode)
        seconds = time.perf_counter() - t0
        scored = common.answer_hits(questions, [[h.chunk.text for h in row] for row in hits])
        scored["batch_seconds"] = round(seconds, 3)
        scored["queries_per_s"] = round(len(texts) / seconds, 2) if seconds else None
        result[mode] = scored
        log(f"ragkit: {mode} hit@1 {scored['hit@1']:.4f} hit@5 {scored['hit@5']:.4f}")
    return result


def run_reingest(args: argparse.Namespace) -> dict[str, Any]:
    """Re-ingest the unchanged folder in a fresh process (what a second ``ragkit ingest`` costs)."""
    import subprocess

    t_start = time.perf_counter()
    from ragkit import Collection

    t_imported = time.perf_counter()
    documents = _documents(args)
    store_dir = Path(args.work) / "ragkit-home"
    col = Collection.open("bench", store_dir=store_dir)
    t_opened = time.perf_counter()
    report = col.ingest([documents])
    t_ingested = time.perf_counter()
    col.close()
    result: dict[str, Any] = {
        "python_api": {
            "import_s": round(t_imported - t_start, 4),
            "open_s": round(t_opened - t_imported, 4),
            "ingest_s": round(t_ingested - t_opened, 4),
            "total_s": round(t_ingested - t_start, 4),
            "report": report.to_dict(),
        }
    }
    log(f"ragkit: re-ingest (fresh process): {report.summary()} in {t_ingested - t_opened:.3f}s")
    command = [
        sys.executable,
        "-m",
        "ragkit.cli",
        "ingest",
        str(documents),
        "-c",
        "bench",
        "--store-dir",
        str(store_dir),
        "--json",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    cli_s = time.perf_counter() - t0
    result["cli"] = {
        "command": "ragkit ingest <documents> -c bench --store-dir <dir> --json",
        "seconds": round(cli_s, 3),
        "returncode": done.returncode,
        "report": json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else done.stderr[-2000:],
    }
    log(f"ragkit: re-ingest with the CLI: {cli_s:.2f}s (exit {done.returncode})")
    return result


# -- LangChain -------------------------------------------------------------------------------


def run_langchain(args: argparse.Namespace) -> dict[str, Any]:
    """The LangChain RAG tutorial's indexing: load, RecursiveCharacterTextSplitter(1000, 200), FAISS."""
    t_import = time.perf_counter()
    import warnings

    from langchain_community.document_loaders import DirectoryLoader, TextLoader
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    # langchain-huggingface, the class's successor, cannot be installed beside transformers 5
    warnings.filterwarnings("ignore", message=".*HuggingFaceEmbeddings.*deprecated")

    documents = _documents(args)
    questions = _questions(args, documents)
    t_model = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(model_name=common.model_path())
    embeddings.embed_documents([WARMUP_TEXT])
    setup = _setup(t_import, t_model)
    log(f"langchain: ingesting {documents}")
    t0 = time.perf_counter()
    loader = DirectoryLoader(str(documents), glob="**/*.md", loader_cls=TextLoader, loader_kwargs={"encoding": "utf-8"})
    docs = loader.load()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)
    splits = splitter.split_documents(docs)
    t_split = time.perf_counter()
    store = FAISS.from_documents(splits, embeddings)
    ingest_s = time.perf_counter() - t0
    peak = common.peak_rss_bytes()
    first = _ingest_numbers(len(docs), len(splits), ingest_s)
    first.update(peak_rss_bytes=peak, load_and_split_s=round(t_split - t0, 3), **setup)
    first["truncation"] = common.truncation([d.page_content.replace("\n", " ") for d in splits])
    log(f"langchain: {len(docs)} files, {len(splits)} chunks in {ingest_s:.1f}s")

    texts = [q["question"] for q in questions]
    log(f"langchain: retrieval for {len(texts)} questions")
    t0 = time.perf_counter()
    vectors = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)  # embed_query == embed_documents([q])[0]
    results = [store.similarity_search_by_vector(v.tolist(), k=TOP_K) for v in vectors]
    seconds = time.perf_counter() - t0
    scored = common.answer_hits(questions, [[d.page_content for d in row] for row in results])
    scored["batch_seconds"] = round(seconds, 3)
    scored["queries_per_s"] = round(len(texts) / seconds, 2)
    log(f"langchain: hit@1 {scored['hit@1']:.4f} hit@5 {scored['hit@5']:.4f}")
    sample = vectors[: args.latency_queries]
    timings = _latency(lambda v: store.similarity_search_by_vector(v[0].tolist(), k=TOP_K), sample)
    return {
        "pipeline": "langchain",
        "defaults": {
            "loader": "DirectoryLoader(glob='**/*.md', loader_cls=TextLoader)",
            "splitter": "RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)",
            "embeddings": "langchain_community HuggingFaceEmbeddings(model_name=<packaged all-MiniLM-L6-v2>): "
            "fp32, encode batch_size 32 (sentence-transformers default)",
            "store": "FAISS.from_documents (IndexFlatL2, in memory)",
        },
        "torch_threads": common.torch_threads(),
        "ingest": first,
        "retrieval": {"dense": scored, "search_store": common.percentiles(timings)},
    }


# -- LlamaIndex -------------------------------------------------------------------------------


def run_llamaindex(args: argparse.Namespace) -> dict[str, Any]:
    """LlamaIndex's starter: SimpleDirectoryReader, default SentenceSplitter, VectorStoreIndex."""
    t_import = time.perf_counter()
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.schema import MetadataMode, QueryBundle
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    documents = _documents(args)
    questions = _questions(args, documents)
    t_model = time.perf_counter()
    Settings.embed_model = HuggingFaceEmbedding(model_name=common.model_path())
    Settings.embed_model.get_text_embedding(WARMUP_TEXT)
    if args.chunk_size:  # a variant: chunks sized to the model's input limit instead of the defaults
        Settings.chunk_size = args.chunk_size
        Settings.chunk_overlap = args.chunk_overlap
    setup = _setup(t_import, t_model)
    log(f"llamaindex: ingesting {documents}")
    t0 = time.perf_counter()
    docs = SimpleDirectoryReader(str(documents)).load_data()
    index = VectorStoreIndex.from_documents(docs)
    ingest_s = time.perf_counter() - t0
    peak = common.peak_rss_bytes()
    nodes = list(index.docstore.docs.values())
    first = _ingest_numbers(_file_count(documents), len(nodes), ingest_s)
    first.update(peak_rss_bytes=peak, reader_documents=len(docs), **setup)
    first["truncation"] = common.truncation([n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes])
    log(f"llamaindex: {len(docs)} documents, {len(nodes)} chunks in {ingest_s:.1f}s")

    texts = [q["question"] for q in questions]
    retriever = index.as_retriever(similarity_top_k=TOP_K)
    embed_model = Settings.embed_model
    log(f"llamaindex: retrieval for {len(texts)} questions")
    t0 = time.perf_counter()
    # what get_query_embedding does, for all questions in one call
    vectors = np.asarray(embed_model._embed(texts, prompt_name="query"), dtype=np.float32)
    results = [
        retriever.retrieve(QueryBundle(query_str=q, embedding=v.tolist())) for q, v in zip(texts, vectors, strict=True)
    ]
    seconds = time.perf_counter() - t0
    scored = common.answer_hits(questions, [[n.node.get_content() for n in row] for row in results])
    scored["batch_seconds"] = round(seconds, 3)
    scored["queries_per_s"] = round(len(texts) / seconds, 2)
    log(f"llamaindex: hit@1 {scored['hit@1']:.4f} hit@5 {scored['hit@5']:.4f}")
    sample = list(zip(texts, vectors, strict=True))[: args.latency_queries]
    timings = []
    for q, v in sample:
        bundle = QueryBundle(query_str=q, embedding=v.tolist())
        t1 = time.perf_counter()
        retriever.retrieve(bundle)
        timings.append(time.perf_counter() - t1)
    splitter = Settings.node_parser
    return {
        "pipeline": "llamaindex" + (f"-{args.chunk_size}" if args.chunk_size else ""),
        "defaults": {
            "reader": "SimpleDirectoryReader(<folder>) (Markdown read as plain text: one Document per file)",
            "splitter": f"{type(splitter).__name__}(chunk_size={splitter.chunk_size}, "
            f"chunk_overlap={splitter.chunk_overlap}) in tokens"
            + (" (set through Settings: not the default)" if args.chunk_size else "")
            + "; metadata counted and embedded",
            "embeddings": f"HuggingFaceEmbedding(model_name=<packaged all-MiniLM-L6-v2>): fp32, "
            f"embed_batch_size {embed_model.embed_batch_size}",
            "store": "VectorStoreIndex over SimpleVectorStore (in memory)",
        },
        "torch_threads": common.torch_threads(),
        "ingest": first,
        "retrieval": {"dense": scored, "search_store": common.percentiles(timings)},
    }


# -- the raw model: the ceiling --------------------------------------------------------------------


def run_encode(args: argparse.Namespace) -> dict[str, Any]:
    """``SentenceTransformer.encode`` over ragkit's chunk texts: no loading, splitting or storing."""
    import torch
    from sentence_transformers import SentenceTransformer

    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    model = SentenceTransformer(common.model_path(), device="cpu")
    if args.precision == "bf16":
        model = model.to(torch.bfloat16)
    model.encode([WARMUP_TEXT])
    log(f"encode: {len(texts)} chunk texts, {args.precision}, batch_size {args.batch_size}, best of {args.repeat}")
    passes = []
    for _ in range(args.repeat):  # the ceiling is what the model can do: the best pass counts
        t0 = time.perf_counter()
        vectors = model.encode(texts, batch_size=args.batch_size, show_progress_bar=False)
        passes.append(time.perf_counter() - t0)
        log(f"encode: {len(texts) / passes[-1]:.2f} chunks/s")
    seconds = min(passes)
    return {
        "pipeline": f"encode-{args.precision}",
        "precision": args.precision,
        "batch_size": args.batch_size,
        "chunks": len(texts),
        "truncation": common.truncation(texts),
        "dimension": int(vectors.shape[1]),
        "seconds": round(seconds, 3),
        "chunks_per_s": round(len(texts) / seconds, 3),
        "passes_chunks_per_s": [round(len(texts) / s, 3) for s in passes],
        "peak_rss_bytes": common.peak_rss_bytes(),
        "torch_threads": common.torch_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", choices=["ragkit", "reingest", "langchain", "llamaindex", "encode"])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--work", default="bench-out/work", help="scratch folder (collections, chunk texts)")
    parser.add_argument("--dataset", help=f"squad-dev folder (default ${common.DATASET_ENV} or ../shared/datasets/...)")
    parser.add_argument("--documents", help="folder to ingest (default: the dataset's documents/)")
    parser.add_argument("--questions", type=int, help="evaluate on an even sample of N questions (default all)")
    parser.add_argument("--latency-queries", type=int, default=1000, help="single queries timed for latency")
    parser.add_argument("--e2e-queries", type=int, default=300, help="single end-to-end queries timed (ragkit)")
    parser.add_argument("--chunk-size", type=int, help="llamaindex: Settings.chunk_size (default: its own)")
    parser.add_argument("--chunk-overlap", type=int, default=32, help="llamaindex: chunk_overlap with --chunk-size")
    parser.add_argument("--texts", help="encode: JSON list of chunk texts")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="encode: model dtype")
    parser.add_argument("--batch-size", type=int, default=32, help="encode: batch size (sentence-transformers default)")
    parser.add_argument("--repeat", type=int, default=2, help="encode: timed passes (the best one counts)")
    args = parser.parse_args(argv)
    runners = {
        "ragkit": run_ragkit,
        "reingest": run_reingest,
        "langchain": run_langchain,
        "llamaindex": run_llamaindex,
        "encode": run_encode,
    }
    return common.run_step(runners, args.pipeline, args)


if __name__ == "__main__":
    raise SystemExit(main())
