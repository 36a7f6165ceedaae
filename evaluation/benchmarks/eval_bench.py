"""The evaluation benchmark: ragkit's eval suites against LangChain and LlamaIndex, their overhead, the judge cache.

Each subcommand runs in its own process and writes one JSON file; ``run_all.py``
runs them one after another (step ``eval``).

    python evaluation/benchmarks/eval_bench.py ragkit     --work W --out W/eval-ragkit.json --questions 1000
    python evaluation/benchmarks/eval_bench.py langchain  --work W --out W/eval-langchain.json --questions 1000
    python evaluation/benchmarks/eval_bench.py llamaindex --work W --out W/eval-llamaindex.json --questions 1000
    python evaluation/benchmarks/eval_bench.py overhead   --work W --out W/eval-overhead.json --sizes 1000,all
    python evaluation/benchmarks/eval_bench.py judge --phase cold --work W --out W/judge-cold.json
    python evaluation/benchmarks/eval_bench.py judge --phase warm --work W --out W/judge-warm.json \
        --cold W/judge-cold.json
    python evaluation/benchmarks/eval_bench.py judge --phase warm-answers --work W \
        --out W/judge-warm-answers.json --cold W/judge-cold.json

**The three systems** evaluate the same questions: the sample ragkit's suite
machinery draws from squad-dev (``draw_sample`` with the suite's seed 0), each
from an empty store (ingest included), with the packaged all-MiniLM-L6-v2 and
retrieval top 10. ``ragkit`` runs the real thing, ``evaluate()`` on the
squad-dev suite reduced to its retrieval-only ``dense`` pipeline. ``langchain``
(the RAG tutorial's indexing) and ``llamaindex`` (its defaults) retrieve with
their own code, as ``ingest_bench.py`` builds them; their retrieved documents
and nodes become ragkit hits (source file, text, character span in the file;
the file named by its path relative to the documents folder, as ragkit's
ingest and the gold sources name it) and are scored and reported by the same ragkit code the suite uses
(``score_samples``, ``aggregate``, ``write_reports``), so the numbers differ only
by what each framework ingested and retrieved. The ragkit process also converts
its own hits the same way and checks the scores come out identical.

**Overhead**: in one process, with the collection ingested and the model warm,
the bare retrievals a retrieval-only suite runs (``collection.search_many`` in
the runner's batches, same ``top_k``) against the whole suite run through
``evaluate()`` (ingest check, retrieval, scoring, writing the three reports),
alternating, repeated, medians.

**Judge cache**: the smoke suite's documents and questions judged by ragas
metrics with the packaged local generator, once with an empty judge cache
(``cold``, which also fills the answer cache), once more with the judge cache
it left and the answer cache off, the default (``warm``), and once with both
caches (``warm-answers``, ``answer_cache: true``), each in a fresh process;
the warm runs compare their per-sample scores with the cold run's.
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import log  # noqa: E402

SUITES = common.REPO / "evaluation" / "suites"
SQUAD_SUITE = SUITES / "squad-dev.yaml"
SMOKE_SUITE = SUITES / "smoke.yaml"
TOP_K = 10
"""Hits per question: the largest ``k`` of the squad-dev suite (1, 5, 10)."""
HEADLINE = ["answer_hit@1", "answer_hit@5", "answer_hit@10", "recall@5", "mrr"]
WARMUP_TEXT = "A short text to warm the model up."
VERSIONED = [
    "ragkit",
    "ragkit-ragas",
    "ragas",
    "langchain-core",
    "langchain-community",
    "langchain-text-splitters",
    "llama-index-core",
    "llama-index-embeddings-huggingface",
    "sentence-transformers",
    "transformers",
    "torch",
    "faiss-cpu",
    "orjson",
]

JUDGE_TOP_K = 3
JUDGE_METRIC_OPTIONS: dict[str, Any] = {"max_tokens": 96, "retries": 1, "timeout": 120, "concurrency": 1}
"""Options of every judged metric: short judgements, one re-ask, one sample at a time (the local model runs one
generation at a time anyway). The cache folder is added per run."""
JUDGED = ["context_precision", "context_recall", "faithfulness", "answer_relevancy"]


# -- the dataset and the suite --------------------------------------------------------------------------------


def eval_dataset(dataset: Path, work: Path, max_docs: int | None) -> Path:
    """The squad-dev folder to evaluate on: the dataset, or a copy of its first ``max_docs`` documents and their
    questions (so the gold spans point into the copied files)."""
    if max_docs is None:
        return dataset
    target = work / "eval-dataset"
    documents = target / "documents"
    documents.mkdir(parents=True, exist_ok=True)
    chosen = sorted(p for p in (dataset / "documents").iterdir() if p.is_file())[:max_docs]
    names = {p.name for p in chosen}
    for stale in documents.iterdir():
        if stale.name not in names:
            stale.unlink()
    for file in chosen:
        copy = documents / file.name
        if not copy.exists() or copy.stat().st_size != file.stat().st_size:
            shutil.copy2(file, copy)  # unchanged copies keep their mtime: a later ingest sees nothing new
    with open(dataset / "questions.jsonl", encoding="utf-8") as handle:
        rows = [line for line in handle if line.strip() and Path(json.loads(line)["document"]).name in names]
    text = "".join(rows)
    questions = target / "questions.jsonl"
    if not questions.exists() or questions.read_text(encoding="utf-8") != text:
        questions.write_text(text, encoding="utf-8")
    return target


def squad_suite(dataset: Path, sample: int | None) -> Any:
    """``evaluation/suites/squad-dev.yaml`` on ``dataset``, reduced to its retrieval-only ``dense`` pipeline."""
    import yaml

    from ragkit.evaluation.suite import Suite

    data = yaml.safe_load(SQUAD_SUITE.read_text(encoding="utf-8"))
    data["documents"]["path"] = str(dataset / "documents")
    data["questions"]["path"] = str(dataset / "questions.jsonl")
    dense = [p for p in data["pipelines"] if isinstance(p, dict) and p.get("name") == "dense"]
    data["pipelines"] = dense or [{"name": "dense", "retrieval_only": True, "mode": "dense"}]
    data["sample"] = sample
    return Suite.parse(data, base_dir=SUITES, where=str(SQUAD_SUITE.relative_to(common.REPO))).check()


def prepare(
    args: argparse.Namespace, t_import: float, load: Callable[[], Any], warm: Callable[[Any], object]
) -> tuple[Path, Any, dict[str, float]]:
    """What a system's evaluation sets up before its clock starts: ragkit's evaluation modules imported, the
    dataset (or its first ``--max-docs`` documents), the model loaded and warmed with one short text.

    Returns the dataset folder, the model, and the set-up's seconds (imports since ``t_import``, the model).
    """
    import_evaluation()
    dataset = eval_dataset(common.dataset_dir(args.dataset), Path(args.work), args.max_docs)
    t_model = time.perf_counter()
    model = load()
    warm(model)
    return dataset, model, {"import_s": t_model - t_import, "load_model_s": time.perf_counter() - t_model}


def draw_questions(dataset: Path, sample: int | None) -> tuple[str, float, Any, list[Any], float]:
    """The squad-dev suite on ``dataset`` and its sample of questions, between the date it started, its clock
    before and its clock after (what the other frameworks' runs time as "loading the suite and its questions")."""
    started_at = _now()
    t0 = time.perf_counter()
    suite = squad_suite(dataset, sample)
    questions = sample_of(suite)
    return started_at, t0, suite, questions, time.perf_counter()


def import_evaluation() -> None:
    """Import ragkit's evaluation modules (before the clock starts: imports are timed apart)."""
    import ragkit.evaluation.html_report
    import ragkit.evaluation.metrics
    import ragkit.evaluation.questions
    import ragkit.evaluation.report
    import ragkit.evaluation.runner
    import ragkit.evaluation.suite  # noqa: F401


def sample_of(suite: Any) -> list[Any]:
    """The questions the suite evaluates: ragkit's own draw (``draw_sample`` with the suite's seed)."""
    from ragkit.evaluation.questions import draw_sample

    return draw_sample(suite.load_questions(), suite.sample, suite.seed)


def describe_sample(suite: Any, questions: Sequence[Any]) -> dict[str, Any]:
    ids = [q.id for q in questions]
    return {
        "questions": len(ids),
        "of": len(suite.load_questions()),
        "seed": suite.seed,
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "first_ids": ids[:3],
    }


# -- scoring foreign hits with ragkit's code ------------------------------------------------------------------


class FileTexts:
    """Document files' texts by source id (relative to the documents folder, as ragkit's ingest names them and
    the gold sources are), read once; finds a retrieved text's span in its file."""

    def __init__(self, documents: Path) -> None:
        self.documents = documents
        self.texts: dict[str, str] = {}
        self.checked = 0
        self.matched = 0
        self.located = 0
        self.unplaced = 0

    def source(self, path: str) -> str:
        """The source id of a file another framework names by its own path (absolute or not)."""
        from ragkit.evaluation.questions import source_id

        return source_id(path, self.documents)

    def text(self, source: str) -> str:
        if source not in self.texts:
            self.texts[source] = (self.documents / source).read_text(encoding="utf-8")
        return self.texts[source]

    def span(self, source: str, text: str, start: int | None) -> tuple[int, int]:
        """``(start, end)`` of ``text`` in the file: the given offset when the file holds the text there, else the
        nearest occurrence (counted in ``located``); ``(0, 0)`` when the file does not hold it."""
        self.checked += 1
        whole = self.text(source)
        if start is not None and start >= 0 and whole[start : start + len(text)] == text:
            self.matched += 1
            return start, start + len(text)
        found = _occurrences(whole, text)
        if not found:
            self.unplaced += 1
            return 0, 0
        self.located += 1
        best = min(found, key=lambda i: abs(i - (start or 0)))
        return best, best + len(text)

    def summary(self) -> dict[str, int]:
        return {
            "hits_checked": self.checked,
            "offset_matches_file": self.matched,
            "located_by_search": self.located,
            "not_found_in_file": self.unplaced,
        }


def _occurrences(text: str, piece: str) -> list[int]:
    found, start = [], text.find(piece)
    while start >= 0 and len(found) < 50:
        found.append(start)
        start = text.find(piece, start + 1)
    return found


def make_hit(source: str, text: str, start: int, end: int, score: float, chunk_id: str) -> Any:
    from ragkit.schema import Chunk, Hit

    chunk = Chunk(id=chunk_id, document_id=source, source=source, text=text, start=start, end=end)
    return Hit(chunk=chunk, score=float(score), origin="dense")


def score_hits(
    suite: Any, questions: Sequence[Any], hit_lists: Sequence[list[Any]], name: str, seconds_per_question: float = 0.0
) -> tuple[list[Any], list[str]]:
    """Score ``hit_lists`` (one per question, best first) with the suite's metrics, exactly as the runner does."""
    from ragkit.evaluation.results import gc_paused
    from ragkit.evaluation.runner import score_samples
    from ragkit.evaluation.sample import EvalSample

    samples = [
        EvalSample(q, name, hits=hits, latency=seconds_per_question, timings={"retrieve": seconds_per_question})
        for q, hits in zip(questions, hit_lists, strict=True)
    ]
    metrics = suite.build_metrics()
    with gc_paused():
        applied = score_samples(metrics, samples, True, name)
    return samples, applied


def write_foreign_reports(
    suite: Any,
    questions: Sequence[Any],
    samples: list[Any],
    applied: list[str],
    name: str,
    collection: dict[str, Any],
    seconds: dict[str, float],
    started_at: str,
    duration: float,
    out_dir: Path,
) -> dict[str, Path]:
    """The same three reports ``evaluate()`` writes, for another framework's samples."""
    from ragkit.evaluation.report import write_reports
    from ragkit.evaluation.results import EvalResult, PipelineResult
    from ragkit.evaluation.suite import PipelineRun

    run = PipelineRun(name, True, "dense", TOP_K)
    result = EvalResult(
        suite=suite,
        questions=list(questions),
        questions_total=len(suite.load_questions()),
        pipelines=[PipelineResult(run, samples, applied, seconds)],
        metric_names=applied,
        collection=collection,
        started_at=started_at,
        finished_at=_now(),
        duration_s=duration,
    )
    return write_reports(result, out_dir)


def score_and_report(
    suite: Any,
    questions: Sequence[Any],
    lists: Sequence[list[Any]],
    name: str,
    collection: dict[str, Any],
    clock: tuple[float, float, float, float, float],
    started_at: str,
    work: Path,
) -> tuple[list[Any], list[str], dict[str, float], dict[str, Path]]:
    """Another framework's hits scored by ragkit's code and reported under ``<work>/<name>-eval-report``.

    ``clock``: ``perf_counter`` at the start, after loading the questions, after ingest, after retrieval and
    after turning the results into hits. Returns the samples, the metrics applied, the seconds of each part
    (questions, ingest, retrieve, convert, score, report) and the reports' paths.
    """
    t0, t1, t2, t3, t_converted = clock
    samples, applied = score_hits(suite, questions, lists, name, (t3 - t2) / max(len(questions), 1))
    t4 = time.perf_counter()
    paths = write_foreign_reports(
        suite,
        questions,
        samples,
        applied,
        name,
        {**collection, "ingest": {"seconds": _r(t2 - t1)}},
        {"answer": t3 - t2, "score": t4 - t_converted},
        started_at,
        t4 - t0,
        work / f"{name}-eval-report",
    )
    parts = {
        "questions": t1 - t0,
        "ingest": t2 - t1,
        "retrieve": t3 - t2,
        "convert": t_converted - t3,
        "score": t4 - t_converted,
        "report": time.perf_counter() - t4,
    }
    return samples, applied, parts, paths


def metric_means(aggregates: dict[str, Any]) -> dict[str, float | None]:
    return {name: entry.get("mean") for name, entry in aggregates.get("metrics", {}).items()}


def sanity(samples: Sequence[Any]) -> dict[str, int]:
    """NaN values and values without a reason over every sample and metric (both must be 0)."""
    nan = unexplained = scored = failed = 0
    for sample in samples:
        for result in sample.metrics.values():
            value = result.value
            if value is None:
                failed += 1
                unexplained += not result.error
            elif isinstance(value, float) and not math.isfinite(value):
                nan += 1
            else:
                scored += 1
    return {
        "values": scored + failed + nan,
        "scored": scored,
        "failed": failed,
        "nan": nan,
        "null_without_reason": unexplained,
    }


def _file_count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _r(value: float, digits: int = 3) -> float:
    return round(value, digits)


def _report_sizes(paths: dict[str, Path]) -> dict[str, int]:
    return {kind: path.stat().st_size for kind, path in paths.items()}


def system_result(
    system: str,
    suite: Any,
    questions: Sequence[Any],
    samples: Sequence[Any],
    applied: list[str],
    setup: dict[str, float],
    parts: dict[str, float],
    chunks: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The JSON of one system's evaluation."""
    from ragkit.evaluation.results import aggregate

    aggregates = aggregate(samples, applied)
    total = sum(parts.values())
    means = metric_means(aggregates)
    log(
        f"{system}: " + ", ".join(f"{m} {means.get(m)}" for m in HEADLINE) + f"; {total:.1f}s for {len(questions)}"
        f" questions ({total / max(len(questions), 1) * 1000:.1f} ms each)"
    )
    return {
        "system": system,
        "sample": describe_sample(suite, questions),
        "top_k": TOP_K,
        "chunks": chunks,
        "metrics": {m: means.get(m) for m in HEADLINE},
        "aggregates": aggregates,
        "setup_s": {k: _r(v) for k, v in setup.items()},
        "parts_s": {k: _r(v) for k, v in parts.items()},
        "total_s": _r(total),
        "seconds_per_question": round(total / max(len(questions), 1), 5),
        "sanity": sanity(samples),
        "torch_threads": common.torch_threads(),
        **extra,
    }


# -- ragkit ---------------------------------------------------------------------------------------------------


def run_ragkit(args: argparse.Namespace) -> dict[str, Any]:
    """``evaluate()`` on the squad-dev suite's ``dense`` pipeline, from an empty store."""
    t_import = time.perf_counter()
    from ragkit import registry
    from ragkit.config import CollectionConfig
    from ragkit.evaluation import evaluate

    # the model loads once per process: load and warm it before the clock, as the other systems do
    dataset, _, setup = prepare(
        args,
        t_import,
        lambda: registry.build("embedder", CollectionConfig.parse({}).embedder),
        lambda embedder: embedder.embed_documents([WARMUP_TEXT]),
    )
    store = _fresh(Path(args.work) / "ragkit-eval-store")
    out = Path(args.work) / "ragkit-eval-report"

    log(f"ragkit: evaluate() on the squad-dev suite (dense, top {TOP_K}), {args.questions} questions, empty store")
    t0 = time.perf_counter()
    suite = squad_suite(dataset, args.questions)
    t1 = time.perf_counter()
    result, paths = evaluate(suite, out_dir=out, store_dir=store)
    t2 = time.perf_counter()
    pipeline = result.pipelines[0]
    seconds = pipeline.seconds
    ingest = result.collection["ingest"]["seconds"]
    run_other = result.duration_s - ingest - sum(seconds.values())
    parts = {
        "questions": t1 - t0,
        "ingest": ingest + run_other,  # the collection created (config checked) and the folder ingested
        "retrieve": seconds["warmup"] + seconds["answer"],
        "score": seconds["score"],
        "report": (t2 - t1) - result.duration_s,
    }
    questions = result.questions
    check = self_check(suite, pipeline, questions)
    log(f"ragkit: self-check of the converted-hit scoring: {'identical' if check['identical'] else 'DIFFERENT'}")
    return system_result(
        "ragkit",
        suite,
        questions,
        pipeline.samples,
        pipeline.metric_names,
        setup,
        parts,
        result.collection["chunks"],
        {
            "description": "ragkit.evaluation.evaluate() on evaluation/suites/squad-dev.yaml with "
            "only its retrieval-only dense pipeline (top 10), the default collection recipe",
            "evaluate_s": _r(t2 - t1),
            "run_seconds": {k: _r(v, 4) for k, v in seconds.items()},
            "ingest_report": result.collection["ingest"],
            "reports_bytes": _report_sizes(paths),
            "self_check": check,
            "peak_rss_bytes": common.peak_rss_bytes(),
        },
    )


def self_check(suite: Any, pipeline: Any, questions: Sequence[Any]) -> dict[str, Any]:
    """ragkit's own hits turned into plain hits (source, text, span in the file) and scored like the others'."""
    from ragkit.evaluation.results import aggregate
    from ragkit.evaluation.sample import chunk_span

    files = FileTexts(suite.documents_dir)
    lists = []
    for sample in pipeline.samples:
        hits = []
        for hit in sample.hits:
            start, _ = chunk_span(hit)
            begin, end = files.span(hit.chunk.source, hit.chunk.text, start)
            hits.append(make_hit(hit.chunk.source, hit.chunk.text, begin, end, hit.score, hit.chunk.id))
        lists.append(hits)
    samples, applied = score_hits(suite, questions, lists, "ragkit-converted")
    theirs = aggregate(samples, applied)["metrics"]
    ours = pipeline.aggregates()["metrics"]
    differences = {
        name: {"suite": ours.get(name), "converted": theirs.get(name)}
        for name in sorted(set(ours) | set(theirs))
        if ours.get(name) != theirs.get(name)
    }
    per_sample = sum(
        1
        for mine, converted in zip(pipeline.samples, samples, strict=True)
        for name in set(mine.metrics) | set(converted.metrics)
        if _value(mine.metrics.get(name)) != _value(converted.metrics.get(name))
    )
    return {
        "identical": not differences and not per_sample,
        "metrics_compared": len(set(ours) | set(theirs)),
        "differences": differences,
        "sample_values_compared": sum(len(s.metrics) for s in samples),
        "sample_values_differing": per_sample,
        "offsets": files.summary(),
    }


def _value(result: Any) -> tuple[Any, Any]:
    return (None, None) if result is None else (result.value, result.error)


# -- LangChain ------------------------------------------------------------------------------------------------


def run_langchain(args: argparse.Namespace) -> dict[str, Any]:
    """The LangChain RAG tutorial's indexing (as ingest_bench.py builds it), retrieval top 10, ragkit's scoring."""
    t_import = time.perf_counter()
    import warnings

    import numpy as np
    from langchain_community.document_loaders import DirectoryLoader, TextLoader
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    warnings.filterwarnings("ignore", message=".*HuggingFaceEmbeddings.*deprecated")
    dataset, embeddings, setup = prepare(
        args,
        t_import,
        lambda: HuggingFaceEmbeddings(model_name=common.model_path()),
        lambda model: model.embed_documents([WARMUP_TEXT]),
    )
    started_at, t0, suite, questions, t1 = draw_questions(dataset, args.questions)
    log(f"langchain: ingesting {dataset / 'documents'}")
    loader = DirectoryLoader(
        str(dataset / "documents"), glob="**/*.md", loader_cls=TextLoader, loader_kwargs={"encoding": "utf-8"}
    )
    docs = loader.load()
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True).split_documents(
        docs
    )
    store = FAISS.from_documents(splits, embeddings)
    t2 = time.perf_counter()
    log(
        f"langchain: {len(docs)} files, {len(splits)} chunks in {t2 - t1:.1f}s; retrieving top {TOP_K} for "
        f"{len(questions)} questions"
    )
    vectors = np.asarray(embeddings.embed_documents([q.question for q in questions]), dtype=np.float32)
    found = [store.similarity_search_with_score_by_vector(v.tolist(), k=TOP_K) for v in vectors]
    t3 = time.perf_counter()
    files = FileTexts(suite.documents_dir)
    lists = []
    for row in found:
        hits = []
        for doc, distance in row:
            source = files.source(doc.metadata["source"])
            start, end = files.span(source, doc.page_content, doc.metadata.get("start_index"))
            hits.append(
                make_hit(
                    source,
                    doc.page_content,
                    start,
                    end,
                    -float(distance),
                    f"langchain:{Path(source).name}:{start}-{end}",
                )
            )
        lists.append(hits)
    t_converted = time.perf_counter()
    samples, applied, parts, paths = score_and_report(
        suite, questions, lists, "langchain", {"name": "langchain-faiss", "chunks": len(splits)},
        (t0, t1, t2, t3, t_converted), started_at, Path(args.work),
    )  # fmt: skip
    return system_result(
        "langchain",
        suite,
        questions,
        samples,
        applied,
        setup,
        parts,
        len(splits),
        {
            "description": "the LangChain RAG tutorial's indexing: DirectoryLoader(glob='**/*.md', TextLoader), "
            "RecursiveCharacterTextSplitter(1000, 200, add_start_index=True), HuggingFaceEmbeddings, "
            "FAISS.from_documents; questions embedded in one embed_documents call, then "
            "similarity_search_with_score_by_vector(k=10) per question",
            "offsets": files.summary(),
            "notes": [
                "hits: the document's `source` (made relative to the documents folder, as ragkit's gold sources "
                "and chunk sources are) and `start_index` (a character offset into the file, "
                "from add_start_index=True), end = start + len(page_content); each checked against the file",
                "scored and reported by ragkit's own code (score_samples, aggregate, write_reports); "
                "score = minus FAISS's L2 distance",
            ],
            "reports_bytes": _report_sizes(paths),
            "peak_rss_bytes": common.peak_rss_bytes(),
        },
    )


# -- LlamaIndex -----------------------------------------------------------------------------------------------


def run_llamaindex(args: argparse.Namespace) -> dict[str, Any]:
    """LlamaIndex's defaults (as ingest_bench.py builds them), retriever similarity_top_k=10, ragkit's scoring."""
    t_import = time.perf_counter()
    import numpy as np
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.schema import QueryBundle
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    dataset, Settings.embed_model, setup = prepare(
        args,
        t_import,
        lambda: HuggingFaceEmbedding(model_name=common.model_path()),
        lambda model: model.get_text_embedding(WARMUP_TEXT),
    )
    started_at, t0, suite, questions, t1 = draw_questions(dataset, args.questions)
    log(f"llamaindex: ingesting {dataset / 'documents'}")
    docs = SimpleDirectoryReader(str(dataset / "documents")).load_data()
    index = VectorStoreIndex.from_documents(docs)
    t2 = time.perf_counter()
    chunks = len(index.docstore.docs)
    log(
        f"llamaindex: {len(docs)} documents, {chunks} nodes in {t2 - t1:.1f}s; retrieving top {TOP_K} for "
        f"{len(questions)} questions"
    )
    retriever = index.as_retriever(similarity_top_k=TOP_K)
    texts = [q.question for q in questions]
    vectors = np.asarray(Settings.embed_model._embed(texts, prompt_name="query"), dtype=np.float32)
    found = [
        retriever.retrieve(QueryBundle(query_str=q, embedding=v.tolist())) for q, v in zip(texts, vectors, strict=True)
    ]
    t3 = time.perf_counter()
    files = FileTexts(suite.documents_dir)
    whole_file = 0
    lists = []
    for row in found:
        hits = []
        for scored in row:
            node = scored.node
            source = files.source(node.metadata["file_path"])
            text = node.get_content()
            start, end = files.span(source, text, node.start_char_idx)
            hits.append(make_hit(source, text, start, end, scored.score or 0.0, f"llamaindex:{node.node_id}"))
        lists.append(hits)
    for doc in docs:  # are the reader's documents the files as they are (offsets then are file offsets)?
        whole_file += doc.text == files.text(files.source(doc.metadata["file_path"]))
    t_converted = time.perf_counter()
    samples, applied, parts, paths = score_and_report(
        suite, questions, lists, "llamaindex", {"name": "llamaindex-simple-vector-store", "chunks": chunks},
        (t0, t1, t2, t3, t_converted), started_at, Path(args.work),
    )  # fmt: skip
    offsets = files.summary()
    splitter = Settings.node_parser
    return system_result(
        "llamaindex",
        suite,
        questions,
        samples,
        applied,
        setup,
        parts,
        chunks,
        {
            "description": f"LlamaIndex defaults: SimpleDirectoryReader, {type(splitter).__name__}("
            f"chunk_size={splitter.chunk_size}, chunk_overlap={splitter.chunk_overlap}), HuggingFaceEmbedding, "
            "VectorStoreIndex.from_documents; questions embedded in one call, then "
            "index.as_retriever(similarity_top_k=10).retrieve per question",
            "offsets": offsets,
            "reader": {"documents": len(docs), "documents_equal_to_their_file": whole_file},
            "notes": [
                f"SimpleDirectoryReader made {len(docs)} documents from {_file_count(dataset / 'documents')} files; "
                f"{whole_file} of them hold their file's text unchanged (without llama-index-readers-file installed, "
                ".md is read as plain text, one document per file), so a node's start_char_idx/end_char_idx are "
                "offsets into the file. Each hit is checked against the file: "
                f"{offsets['offset_matches_file']} of {offsets['hits_checked']} matched at their offsets, "
                f"{offsets['located_by_search']} were located by searching the file for the node text "
                "(the occurrence nearest the given offset), "
                f"{offsets['not_found_in_file']} not found",
                "scored and reported by ragkit's own code (score_samples, aggregate, write_reports)",
            ],
            "reports_bytes": _report_sizes(paths),
            "peak_rss_bytes": common.peak_rss_bytes(),
        },
    )


# -- overhead -------------------------------------------------------------------------------------------------


def run_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Bare ``search_many`` in the runner's batches vs the whole retrieval-only suite through ``evaluate()``."""
    from ragkit import Collection
    from ragkit.evaluation import evaluate
    from ragkit.evaluation.questions import draw_sample
    from ragkit.evaluation.runner import SEARCH_BATCH

    import_evaluation()
    dataset = eval_dataset(common.dataset_dir(args.dataset), Path(args.work), args.max_docs)
    store = _fresh(Path(args.work) / "overhead-store")
    out = Path(args.work) / "overhead-report"
    t0 = time.perf_counter()
    suite = squad_suite(dataset, None)
    suite_load_s = time.perf_counter() - t0
    everything = suite.load_questions()
    sizes = sorted({len(everything) if s == "all" else min(int(s), len(everything)) for s in args.sizes.split(",")})
    log(f"overhead: ingesting {dataset / 'documents'} (untimed set-up)")
    evaluate(suite, out_dir=out / "setup", store_dir=store, sample=min(sizes))
    collection = Collection.open(suite.collection_name(), store_dir=store)
    top_k = suite.pipeline_runs()[0].top_k
    mode = suite.pipeline_runs()[0].mode
    collection.search(WARMUP_TEXT, top_k=top_k, mode=mode)
    runs = []
    for size in sizes:
        questions = draw_sample(everything, size, suite.seed)
        texts = [q.question for q in questions]

        def bare(texts: list[str] = texts) -> dict[str, float]:
            found: list[Any] = []  # kept, as the runner keeps them (to score them)
            t = time.perf_counter()
            for start in range(0, len(texts), SEARCH_BATCH):
                found.extend(collection.search_many(texts[start : start + SEARCH_BATCH], top_k, mode=mode))
            return {"total": time.perf_counter() - t}

        def whole(size: int = size) -> dict[str, float]:
            t = time.perf_counter()
            result, paths = evaluate(suite, out_dir=out / str(size), store_dir=store, sample=size)
            total = time.perf_counter() - t
            seconds = result.pipelines[0].seconds
            ingest = result.collection["ingest"]["seconds"]
            return {
                "total": total,
                "ingest_check": ingest,
                "open_and_first_search": seconds["warmup"] + (result.duration_s - ingest - sum(seconds.values())),
                "retrieve": seconds["answer"],
                "score": seconds["score"],
                "write_reports": total - result.duration_s,
                "report_bytes": float(sum(p.stat().st_size for p in paths.values())),
            }

        repeats = args.repeats if size > 2000 else max(args.repeats, 5)  # small sizes: cheap, and noisier
        log(f"overhead: {size} questions, bare search_many vs evaluate(), {repeats} rounds, alternating")
        rounds = []
        for i in range(repeats):
            order: list[tuple[str, Callable[[], dict[str, float]]]] = [("bare", bare), ("suite", whole)]
            if i % 2:
                order.reverse()
            done: dict[str, dict[str, float]] = {}
            for name, call in order:
                gc.collect()
                done[name] = call()
            rounds.append(done)
            log(
                f"overhead: {size} questions, round {i + 1}: bare {done['bare']['total']:.2f}s, suite "
                f"{done['suite']['total']:.2f}s ({done['suite']['total'] / done['bare']['total'] - 1:+.1%})"
            )
        runs.append(overhead_summary(size, rounds))
    collection.close()
    return {
        "top_k": top_k,
        "mode": mode,
        "search_batch": SEARCH_BATCH,
        "repeats": args.repeats,
        "overhead_pct_is": "median suite seconds / median bare seconds - 1",
        "questions_total": len(everything),
        "suite_load_s": _r(suite_load_s),
        "sizes": runs,
        "notes": [
            "bare: collection.search_many(questions[i:i+SEARCH_BATCH], top_k, mode='dense') over the same sample, "
            "on a collection opened once (store loaded, model warm), the hits kept in a list as the runner keeps them",
            "rounds: --repeats for the large sizes, at least 5 for sizes up to 2,000 questions (seconds each)",
            "suite: ragkit.evaluation.evaluate(suite, out_dir, store_dir, sample=N): opens the collection, "
            "checks the folder for changes (incremental ingest: nothing to do), retrieves in the same batches, "
            "scores every metric of the squad-dev suite that applies to retrieval (13), writes report.json, "
            "report.md and report.html",
            "the Suite object is loaded once (its questions file parsed once), as the bare side gets its question "
            "texts for free; loading the suite file and all its questions takes suite_load_s on top, once per run",
        ],
        "peak_rss_bytes": common.peak_rss_bytes(),
        "torch_threads": common.torch_threads(),
    }


def overhead_summary(size: int, rounds: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    def median(side: str, key: str) -> float:
        return statistics.median(r[side][key] for r in rounds)

    bare = median("bare", "total")
    suite = median("suite", "total")
    parts = {key: median("suite", key) for key in rounds[0]["suite"] if key not in ("total", "report_bytes")}
    ratios = [r["suite"]["total"] / r["bare"]["total"] - 1 for r in rounds]
    added = suite - bare
    where = {
        "score": parts["score"],
        "write_reports": parts["write_reports"],
        "ingest_check_and_open": parts["ingest_check"] + parts["open_and_first_search"],
        "retrieval_difference": parts["retrieve"] - bare,
    }
    where["other"] = added - sum(where.values())
    return {
        "questions": size,
        "rounds_run": len(rounds),
        "bare_s": _r(bare, 4),
        "suite_s": _r(suite, 4),
        "overhead_pct": round((suite / bare - 1) * 100, 2),
        "overhead_pct_per_round": [round(r * 100, 2) for r in ratios],
        "overhead_pct_median_of_rounds": round(statistics.median(ratios) * 100, 2),
        "suite_parts_s": {k: _r(v, 4) for k, v in parts.items()},
        "added_s": _r(added, 4),
        "where_added_s": {k: _r(v, 4) for k, v in where.items()},
        "report_bytes": int(rounds[0]["suite"]["report_bytes"]),
        "rounds": [
            {side: {k: _r(v, 4) for k, v in r[side].items() if k != "report_bytes"} for side in r} for r in rounds
        ],
    }


# -- the judge cache ------------------------------------------------------------------------------------------


def judge_suite(cache_dir: Path, questions: int | None) -> Any:
    """The smoke suite's documents and questions, judged by ragas metrics with the packaged local generator."""
    import yaml

    from ragkit.evaluation.suite import Suite

    data = yaml.safe_load(SMOKE_SUITE.read_text(encoding="utf-8"))
    options = {**JUDGE_METRIC_OPTIONS, "cache_dir": str(cache_dir)}
    basic = next(p for p in data["pipelines"] if isinstance(p, dict) and p.get("name") == "basic")
    basic = {**basic, "config": {**basic.get("config", {}), "retrieval": {"top_k": JUDGE_TOP_K}}}
    data.update(
        {
            "name": "smoke-judged",
            "description": "The smoke suite's documents and questions, judged by ragas metrics (SmolLM2 judge).",
            "pipelines": [{"name": "dense", "retrieval_only": True, "mode": "dense", "top_k": JUDGE_TOP_K}, basic],
            "metrics": [
                "answer_hit",
                "recall",
                {"name": "context_precision", "options": options},
                {"name": "context_recall", "options": options},
                {"name": "faithfulness", "options": options},
                {"name": "answer_relevancy", "options": {**options, "options": {"strictness": 1}}},
            ],
            "k": [JUDGE_TOP_K],
            "judge": {"type": "transformers"},
            "sample": questions,
        }
    )
    return Suite.parse(data, base_dir=SUITES, where=str(SMOKE_SUITE.relative_to(common.REPO))).check()


def run_judge(args: argparse.Namespace) -> dict[str, Any]:
    """One run of the judged suite: ``cold`` (empty caches and store), ``warm`` (the judge cache cold left, the
    answers generated again) or ``warm-answers`` (both caches cold left)."""
    from ragkit.evaluation import evaluate

    root = Path(args.work) / "judge"
    answer_cache = args.phase in ("cold", "warm-answers")  # cold writes the answers warm-answers replays
    if args.phase == "cold":
        _fresh(root)
    cache_dir = root / "cache"
    suite = judge_suite(cache_dir, args.judge_questions)
    seen: set[str] = set()

    def progress(stage: str, done: int, total: int, errors: int) -> None:
        if stage not in seen:
            seen.add(stage)
            log(f"judge {args.phase}: {stage} ...")

    log(
        f"judge {args.phase}: {len(suite.load_questions())} smoke questions (sample {args.judge_questions}), "
        f"cache {cache_dir} ({'emptied' if args.phase == 'cold' else 'kept'})"
    )
    t0 = time.perf_counter()
    result, paths = evaluate(
        suite, out_dir=root / args.phase, store_dir=root / "store", progress=progress, answer_cache=answer_cache
    )
    evaluate_s = time.perf_counter() - t0
    samples = [s for p in result.pipelines for s in p.samples]
    judged = [m for m in result.metric_names if m in JUDGED]
    calls = hits = retries = 0
    for sample in samples:
        for name in judged:
            details = sample.metrics[name].details if name in sample.metrics else {}
            calls += int(details.get("judge_calls", 0))
            hits += int(details.get("judge_cache_hits", 0))
            retries += int(details.get("judge_retries", 0))
    values = [[s.pipeline, s.question.id, name, r.value, r.error] for s in samples for name, r in s.metrics.items()]
    summary = {
        "phase": args.phase,
        "evaluate_s": _r(evaluate_s),
        "process_s": _r(time.perf_counter() - PROCESS_START),
        "scoring_s": _r(sum(p.seconds.get("score", 0.0) for p in result.pipelines)),
        "answer_s": _r(sum(p.seconds.get("answer", 0.0) for p in result.pipelines if not p.run.retrieval_only)),
        "ingest": result.collection["ingest"],
        "pipelines": {
            p.run.name: {"seconds": {k: _r(v) for k, v in p.seconds.items()}, "metrics": p.aggregates()["metrics"]}
            for p in result.pipelines
        },
        "answer_cache": answer_cache,
        "answers_cached": sum(s.answer_cached for s in samples),
        "judge_calls": calls,
        "judge_cache_hits": hits,
        "judge_retries": retries,
        "cache_entries": cache_entries(cache_dir),
        "sanity": sanity(samples),
        "per_metric": per_metric(samples),
        "values": values,
    }
    log(
        f"judge {args.phase}: evaluate() {evaluate_s:.1f}s, scoring {summary['scoring_s']:.1f}s, "
        f"{calls} judge calls, {hits} cache hits, NaN {summary['sanity']['nan']}"
    )
    answers = {f"{s.pipeline}/{s.question.id}": s.answer for s in samples if s.answer is not None}
    summary["answers_sha256"] = hashlib.sha256(json.dumps(answers, sort_keys=True).encode()).hexdigest()
    out: dict[str, Any] = {
        "suite": {
            "based_on": str(SMOKE_SUITE.relative_to(common.REPO)),
            "questions": len(result.questions),
            "pipelines": [p.run.describe() for p in result.pipelines],
            "metrics": result.metric_names,
            "judged_metrics": judged,
            "judge": dict(suite.judge or {}),
            "judge_options": JUDGE_METRIC_OPTIONS,
            "top_k": JUDGE_TOP_K,
        },
        args.phase: summary,
        "reports_bytes": _report_sizes(paths),
        "peak_rss_bytes": common.peak_rss_bytes(),
    }
    if args.phase == "warm":
        # the long-lived-process case (the service, a notebook): models already loaded, cache warm
        log("judge warm: again in the same process (models loaded) ...")
        t0 = time.perf_counter()
        again, _ = evaluate(suite, out_dir=root / "warm-again", store_dir=root / "store")
        again_s = time.perf_counter() - t0
        again_samples = [s for p in again.pipelines for s in p.samples]
        again_values = [
            [s.pipeline, s.question.id, name, r.value, r.error] for s in again_samples for name, r in s.metrics.items()
        ]
        out["warm_again"] = {
            "evaluate_s": _r(again_s),
            "scoring_s": _r(sum(p.seconds.get("score", 0.0) for p in again.pipelines)),
            "answer_s": _r(sum(p.seconds.get("answer", 0.0) for p in again.pipelines if not p.run.retrieval_only)),
            "judge_calls": sum(
                int(s.metrics[name].details.get("judge_calls", 0))
                for s in again_samples
                for name in judged
                if name in s.metrics
            ),
            "identical_to_warm": again_values == values,
        }
        log(f"judge warm again: evaluate() {again_s:.1f}s, {out['warm_again']['judge_calls']} judge calls")
    if args.phase in ("warm", "warm-answers") and args.cold:
        cold_file = json.loads(Path(args.cold).read_text(encoding="utf-8"))
        cold = cold_file["cold"]
        out["cold"] = cold
        out["comparison"] = compare_runs(cold, summary)
        c = out["comparison"]
        log(
            f"judge: whole run {c['evaluate_ratio']}x faster warm, scoring {c['scoring_ratio']}x; identical "
            f"values: {c['identical']} ({c['differing']} of {c['compared']} differ)"
        )
    return out


def cache_entries(cache_dir: Path) -> int | None:
    from ragkit_ragas.cache import CACHE_FILE, JudgeCache

    if not (cache_dir / CACHE_FILE).exists():
        return None
    cache = JudgeCache(cache_dir)
    try:
        return len(cache)
    finally:
        cache.close()


def _reason_group(error: str) -> str:
    """A failure reason without the parts that change per sample (the judge's last answer, numbers)."""
    text = error.split("; last answer")[0].split(" (typically:")[0]
    return text if len(text) <= 160 else text[:157] + "..."


def per_metric(samples: Sequence[Any]) -> dict[str, Any]:
    """Per metric: samples scored, failed, and the failure reasons grouped."""
    found: dict[str, dict[str, Any]] = {}
    for sample in samples:
        for name, result in sample.metrics.items():
            entry = found.setdefault(name, {"scored": 0, "failed": 0, "reasons": Counter()})
            if result.value is None:
                entry["failed"] += 1
                entry["reasons"][_reason_group(result.error or "no reason given")] += 1
            else:
                entry["scored"] += 1
    return {
        name: {"scored": e["scored"], "failed": e["failed"], "reasons": dict(e["reasons"].most_common())}
        for name, e in found.items()
    }


def compare_runs(cold: dict[str, Any], warm: dict[str, Any]) -> dict[str, Any]:
    """Per sample and metric: the same value and the same failure reason in both runs?"""
    before = {(p, q, m): (v, e) for p, q, m, v, e in cold["values"]}
    after = {(p, q, m): (v, e) for p, q, m, v, e in warm["values"]}
    keys = sorted(set(before) | set(after))
    differing = [
        {"pipeline": k[0], "question": k[1], "metric": k[2], "cold": before.get(k), "warm": after.get(k)}
        for k in keys
        if before.get(k) != after.get(k)
    ]
    return {
        "compared": len(keys),
        "differing": len(differing),
        "identical": not differing,
        "differences": differing[:20],
        "same_answers": cold.get("answers_sha256") == warm.get("answers_sha256"),
        "evaluate_ratio": round(cold["evaluate_s"] / warm["evaluate_s"], 2) if warm["evaluate_s"] else None,
        "process_ratio": round(cold["process_s"] / warm["process_s"], 2) if warm["process_s"] else None,
        "scoring_ratio": round(cold["scoring_s"] / warm["scoring_s"], 2) if warm["scoring_s"] else None,
    }


# -- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", choices=["ragkit", "langchain", "llamaindex", "overhead", "judge"])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--work", default="bench-out/work/eval", help="scratch folder (stores, reports)")
    parser.add_argument("--dataset", help=f"squad-dev folder (default ${common.DATASET_ENV} or ../shared/datasets/...)")
    parser.add_argument("--max-docs", type=int, help="evaluate on the first N documents and their questions only")
    parser.add_argument("--questions", type=int, default=1000, help="questions drawn with the suite's seed (1000)")
    parser.add_argument("--sizes", default="1000,all", help="overhead: sample sizes, 'all' for every question")
    parser.add_argument("--repeats", type=int, default=3, help="overhead: rounds of bare and suite runs")
    parser.add_argument(
        "--phase",
        choices=["cold", "warm", "warm-answers"],
        default="cold",
        help="judge: empty caches, the judge cache kept, or both the judge and the answer cache kept",
    )
    parser.add_argument("--cold", help="judge --phase warm/warm-answers: the cold run's JSON, to compare with")
    parser.add_argument("--judge-questions", type=int, default=10, help="judge: smoke questions to judge (10)")
    args = parser.parse_args(argv)
    runners = {
        "ragkit": run_ragkit,
        "langchain": run_langchain,
        "llamaindex": run_llamaindex,
        "overhead": run_overhead,
        "judge": run_judge,
    }
    return common.run_step(runners, args.system, args, extra=_process_facts)


def _process_facts() -> dict[str, Any]:
    """What every evaluation step records about its process: the versions, and its whole time so far."""
    return {"versions": common.versions(VERSIONED), "process_s": _r(time.perf_counter() - PROCESS_START)}


if __name__ == "__main__":
    raise SystemExit(main())
