"""Tables from a results file: targets, a plain-text summary, and docs/benchmarks.md.

    python evaluation/benchmarks/report.py bench-out/results.json [--docs docs/benchmarks.md]

re-renders the page from saved results. The page's tables are rewritten on
every run; the hand-written notes between the ``notes:start`` and
``notes:end`` markers are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

NOTES_START = "<!-- notes:start -->"
NOTES_END = "<!-- notes:end -->"
DEFAULT_NOTES = "No notes yet: read the numbers above against the targets."


# -- small formatters -----------------------------------------------------------------------------


def _get(data: Any, *path: str | int, default: Any = None) -> Any:
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        else:
            return default
    return data


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def fx(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (abs(value) >= 1000 and digits <= 2):
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def mib(value: float | None) -> str:
    return "–" if value is None else f"{value / 2**20:,.0f} MiB"


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f} ms" if value < 10 else f"{value:,.1f} ms"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- derived numbers ----------------------------------------------------------------------------------


def ceiling(results: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The raw-encode run at the precision ragkit itself ran in (the fair ceiling), and its name."""
    ingest = results.get("ingest", {})
    precision = _get(ingest, "ragkit", "embedder", "precision")
    key = f"encode_{precision}" if precision in ("fp32", "bf16") else "encode_fp32"
    return key, ingest.get(key)


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    ingest = results.get("ingest", {})
    docs = {name: _get(ingest, name, "ingest", "documents_per_s") for name in ("ragkit", "langchain", "llamaindex")}
    ragkit_chunks = _get(ingest, "ragkit", "ingest", "chunks_per_s")
    _, ceil = ceiling(results)
    first = _get(ingest, "ragkit", "ingest", "seconds")
    fit = _get(ingest, "llamaindex_fit", "ingest", "documents_per_s")
    return {
        "ragkit_vs_llamaindex_fit": _ratio(docs["ragkit"], fit),
        "ragkit_vs_langchain": _ratio(docs["ragkit"], docs["langchain"]),
        "ragkit_vs_llamaindex": _ratio(docs["ragkit"], docs["llamaindex"]),
        "ragkit_vs_ceiling": _ratio(ragkit_chunks, _get(ceil, "chunks_per_s")),
        "ragkit_vs_encode_fp32": _ratio(ragkit_chunks, _get(ingest, "encode_fp32", "chunks_per_s")),
        "reingest_speedup": _ratio(first, _get(ingest, "ragkit", "reingest_warm", "seconds")),
        "reingest_speedup_fresh_process": _ratio(first, _get(ingest, "reingest", "python_api", "total_s")),
        "reingest_speedup_cli": _ratio(first, _get(ingest, "reingest", "cli", "seconds")),
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what was measured and whether it was met (``None``: not measured)."""
    ingest = results.get("ingest", {})
    r = ratios(results)
    out: list[dict[str, Any]] = []

    def add(name: str, goal: str, value: Any, shown: str, met: bool | None) -> None:
        out.append({"target": name, "goal": goal, "measured": value, "shown": shown, "met": met})

    def at_least(value: float | None, bound: float) -> bool | None:
        return None if value is None else value >= bound

    def at_most(value: float | None, bound: float) -> bool | None:
        return None if value is None else value <= bound

    key, _ = ceiling(results)
    add(
        "ingest vs raw encode",
        ">= 0.90 of the raw model's encode rate on the same chunks",
        r["ragkit_vs_ceiling"],
        fx(r["ragkit_vs_ceiling"]) + f" (ceiling: {key})",
        at_least(r["ragkit_vs_ceiling"], 0.9),
    )
    add(
        "ingest vs LangChain",
        ">= 1.3x documents/s",
        r["ragkit_vs_langchain"],
        fx(r["ragkit_vs_langchain"]),
        at_least(r["ragkit_vs_langchain"], 1.3),
    )
    add(
        "ingest vs LlamaIndex",
        ">= 1.3x documents/s",
        r["ragkit_vs_llamaindex"],
        fx(r["ragkit_vs_llamaindex"]),
        at_least(r["ragkit_vs_llamaindex"], 1.3),
    )
    add(
        "re-ingest unchanged folder",
        ">= 20x faster than the first ingest",
        r["reingest_speedup"],
        fx(r["reingest_speedup"]) + " (same process)",
        at_least(r["reingest_speedup"], 20),
    )
    overhead = _get(ingest, "ragkit", "retrieval", "search_overhead_p50_ms")
    add(
        "search overhead over raw FAISS",
        "< 1 ms at p50",
        overhead,
        ms(overhead),
        None if overhead is None else overhead < 1,
    )
    ours = _get(ingest, "ragkit", "retrieval", "dense", "hit@5")
    theirs = _get(ingest, "langchain", "retrieval", "dense", "hit@5")
    add(
        "answer-hit@5, ragkit dense vs LangChain",
        ">= LangChain's",
        _ratio(ours, theirs),
        f"{pct(ours)} vs {pct(theirs)}",
        None if ours is None or theirs is None else ours >= theirs,
    )
    peak = _get(ingest, "ragkit", "ingest", "peak_rss_bytes")
    lc_peak = _get(ingest, "langchain", "ingest", "peak_rss_bytes")
    add(
        "peak memory while ingesting",
        "<= LangChain's",
        _ratio(peak, lc_peak),
        f"{mib(peak)} vs {mib(lc_peak)}",
        None if peak is None or lc_peak is None else peak <= lc_peak,
    )
    faiss = _get(results, "store", "faiss", "search") or {}
    n = faiss.get("n")
    scale = f" at {n:,} vectors" if n else ""
    extra = _get(faiss, "memory", "resident_overhead_bytes_per_vector")
    add(
        "FAISS store memory" + scale,
        "<= 2 KiB resident per vector beyond the vector",
        extra,
        "–" if extra is None else f"{extra:,.0f} B",
        at_most(extra, 2048),
    )
    p50 = _get(faiss, "search", "none", "latency", "p50_ms")
    add("FAISS approximate search p50" + scale, "< 10 ms", p50, ms(p50), None if p50 is None else p50 < 10)
    recall = _get(faiss, "search", "none", "recall@10")
    add("FAISS recall@10 vs exact" + scale, ">= 0.95", recall, pct(recall), at_least(recall, 0.95))
    for row in service_targets(results.get("service") or {}):
        add(*row)
    for row in eval_targets(results.get("eval") or {}):
        add(*row)
    return out


def eval_targets(evaluation: dict[str, Any]) -> list[tuple[str, str, Any, str, bool | None]]:
    """The evaluation step's targets as (target, goal, measured, shown, met) rows; ``met`` is None when not measured."""
    rows: list[tuple[str, str, Any, str, bool | None]] = []
    sizes = _get(evaluation, "overhead", "sizes") or []
    worst = max((s["overhead_pct"] for s in sizes), default=None)
    rows.append(
        (
            "retrieval-only suite costs < 10 % more than its retrievals",
            "`evaluate()` (ingest check, retrieval, scoring, three reports) vs the bare `search_many` calls it "
            "makes, same questions, alternating, median",
            worst,
            ", ".join(f"{s['overhead_pct']:+.1f} % at {s['questions']:,} questions" for s in sizes) or "–",
            None if worst is None else worst < 10,
        )
    )
    comparison = _get(evaluation, "judge", "comparison") or {}
    ratio = comparison.get("evaluate_ratio")
    identical = comparison.get("identical")
    again = _get(evaluation, "judge", "warm_again") or {}
    cold_s = _get(evaluation, "judge", "cold", "evaluate_s")
    again_ratio = _ratio(cold_s, again.get("evaluate_s")) if again else None
    with_answers = _get(evaluation, "judge_answers", "comparison") or {}
    answers_ratio = with_answers.get("evaluate_ratio")
    both_identical = bool(identical and with_answers.get("identical"))
    rows.append(
        (
            "warm judge cache: re-run >= 20x faster, identical scores",
            "LLM-judged suite run again in a fresh process with the caches of the first run: whole `evaluate()` "
            "time, and every sample's metric values and failure reasons; met with `answer_cache: true` (the RAG "
            "answers replayed too), the judge cache alone is the second figure",
            answers_ratio if answers_ratio is not None else ratio,
            "–"
            if ratio is None
            else (
                f"{fx(answers_ratio)} with the answer cache, "
                f"{'identical' if with_answers.get('identical') else 'NOT identical'}; "
                if answers_ratio is not None
                else ""
            )
            + f"judge cache alone {fx(ratio)} in a fresh process, "
            + (f"{fx(again_ratio)} again in the same process; " if again_ratio is not None else "")
            + f"scoring {fx(comparison.get('scoring_ratio'))}; "
            f"{'identical' if identical else 'NOT identical'} ({comparison.get('differing')} of "
            f"{comparison.get('compared')} values differ)",
            None if answers_ratio is None else bool(answers_ratio >= 20 and both_identical),
        )
    )
    checked = eval_sanity(evaluation)
    bad = None if not checked["values"] else checked["nan"] + checked["null_without_reason"]
    rows.append(
        (
            "no sample ends as NaN",
            "every sample's metric is a number, or null with the reason it failed",
            bad,
            "–"
            if bad is None
            else f"{checked['nan']} NaN, {checked['null_without_reason']} null without a "
            f"reason, over {checked['values']:,} values ({checked['failed']:,} failed with a reason)",
            None if bad is None else bad == 0,
        )
    )
    return rows


def eval_sanity(evaluation: dict[str, Any]) -> dict[str, int]:
    """NaN and unexplained nulls summed over every evaluation run of the step (three systems, the judge runs)."""
    total = {"values": 0, "failed": 0, "nan": 0, "null_without_reason": 0}
    runs = [evaluation.get(name) for name in ("ragkit", "langchain", "llamaindex")]
    judge = evaluation.get("judge") or {}
    runs += [judge.get("cold"), judge.get("warm"), _get(evaluation, "judge_answers", "warm-answers")]
    for run in runs:
        for key in total:
            total[key] += int(_get(run, "sanity", key, default=0) or 0)
    return total


def service_level(service: dict[str, Any], route: str, concurrency: int) -> dict[str, Any] | None:
    """The load run of ``route`` (``search`` or ``ask``) at ``concurrency``, if it was measured."""
    for level in service.get(route) or []:
        if level.get("concurrency") == concurrency:
            return dict(level)
    return None


def service_targets(service: dict[str, Any]) -> list[tuple[str, str, Any, str, bool | None]]:
    """The REST service's targets as (target, goal, measured, shown, met) rows; ``met`` is None when not measured."""
    rows: list[tuple[str, str, Any, str, bool | None]] = []
    c32 = service_level(service, "search", 32) or {}
    errors = c32.get("errors")
    rows.append(
        (
            "search at c=32: zero errors",
            "no request fails (exception or status other than 200)",
            errors,
            "–" if errors is None else f"{errors} of {c32['requests']:,} failed",
            None if errors is None else errors == 0,
        )
    )
    added = _get(service, "overhead", "search", "overhead_p50_ms")
    http, local = (
        _get(service, "overhead", "search", "http_p50_ms"),
        _get(service, "overhead", "search", "in_process_p50_ms"),
    )
    rows.append(
        (
            "HTTP layer adds < 2 ms at p50 over in-process",
            "search, one request at a time: HTTP p50 minus `col.search` p50, same questions, alternating",
            added,
            "–" if added is None else f"{added:+.2f} ms ({ms(http)} vs {ms(local)})",
            None if added is None else added < 2,
        )
    )
    p50, p99 = _get(c32, "latency", "p50_ms"), _get(c32, "latency", "p99_ms")
    spread = _ratio(p99, p50)
    rows.append(
        (
            "p99 < 5x p50 at c=32",
            "search latency at concurrency 32",
            spread,
            "–" if spread is None else f"{fx(spread)} ({ms(p99)} / {ms(p50)})",
            None if spread is None else spread < 5,
        )
    )
    delay, worst = _get(service, "stream", "delay_p50_ms"), _get(service, "stream", "delay_max_ms")
    rows.append(
        (
            "first SSE token leaves within 50 ms of the generator",
            "streamed ask: client's first `token` event minus the server's retrieve + assemble + first_token, "
            "median < 50 ms",
            delay,
            "–" if delay is None else f"{ms(delay)} (max {ms(worst)})",
            None if delay is None else delay < 50,
        )
    )
    rss = _get(service, "memory", "rss_after_warmup_bytes")
    rows.append(
        (
            "serve RSS with models loaded < 2 GiB",
            "server RSS after warm-up (embedder and generator loaded)",
            rss,
            mib(rss),
            None if rss is None else rss < 2 * 2**30,
        )
    )
    soak = _get(service, "memory", "soak") or {}
    growth, n = soak.get("growth_pct"), soak.get("requests")
    rows.append(
        (
            f"RSS flat within 10% across {n or 10_000:,} searches",
            "server RSS after the searches (concurrency 8) within 10 % of before",
            growth,
            "–"
            if growth is None
            else f"{growth:+.1f} % ({mib(soak.get('rss_before_bytes'))} → {mib(soak.get('rss_after_bytes'))})",
            None if growth is None else abs(growth) <= 10,
        )
    )
    return rows


# -- plain text ------------------------------------------------------------------------------------


def text_tables(results: dict[str, Any]) -> str:
    """A compact summary for stdout."""
    lines = [f"ragkit benchmarks ({results['meta']['mode']}, {results['meta']['date']})", ""]
    ingest = results.get("ingest", {})
    if ingest:
        lines.append(f"{'ingestion':<26}{'docs/s':>10}{'chunks/s':>10}{'chunks':>8}{'seconds':>9}{'peak RSS':>11}")
        for label, key in _INGEST_ROWS:
            row = ingest.get(key)
            if not row:
                continue
            data = row.get("ingest", row)
            lines.append(
                f"{label:<26}{num(data.get('documents_per_s'), 3):>10}{num(data.get('chunks_per_s')):>10}"
                f"{data.get('chunks', '–'):>8}{num(data.get('seconds'), 1):>9}{mib(data.get('peak_rss_bytes')):>11}"
            )
        r = ratios(results)
        lines.append(
            f"ratios: ragkit/LangChain {fx(r['ragkit_vs_langchain'])}, "
            f"ragkit/LlamaIndex {fx(r['ragkit_vs_llamaindex'])}"
            f" (documents/s); ragkit/raw-encode ceiling {fx(r['ragkit_vs_ceiling'])}, ragkit/raw fp32 "
            f"{fx(r['ragkit_vs_encode_fp32'])} (chunks/s); re-ingest speed-up {fx(r['reingest_speedup'])}"
        )
        lines.append("")
        lines.append(f"{'retrieval':<26}{'hit@1':>8}{'hit@5':>8}")
        for label, key, mode in _RETRIEVAL_ROWS:
            scored = _get(ingest, key, "retrieval", mode)
            if scored:
                lines.append(f"{label:<26}{pct(scored['hit@1']):>8}{pct(scored['hit@5']):>8}")
        rk = _get(ingest, "ragkit", "retrieval") or {}
        if rk:
            lines.append(
                f"search p50: store {ms(_get(rk, 'search_store', 'p50_ms'))}, raw FAISS "
                f"{ms(_get(rk, 'search_raw_faiss', 'p50_ms'))}, overhead {ms(rk.get('search_overhead_p50_ms'))}; "
                f"end to end {ms(_get(rk, 'search_end_to_end', 'p50_ms'))}"
            )
        lines.append("")
    store = results.get("store", {})
    for name in ("faiss", "milvus"):
        ins, srch = _get(store, name, "insert"), _get(store, name, "search")
        if not ins:
            continue
        lines.append(f"store {name}: {ins['n']:,} vectors, insert {num(ins['insert_vectors_per_s'])}/s")
        if srch:
            for flt, entry in srch.get("search", {}).items():
                if "error" in entry:
                    lines.append(f"  filter {flt:<10} FAILED: {entry['error']}")
                    continue
                lines.append(
                    f"  filter {flt:<10} p50 {ms(entry['latency'].get('p50_ms')):>11} p99 "
                    f"{ms(entry['latency'].get('p99_ms')):>11} recall@10 {pct(entry['recall@10'])} "
                    f"({entry['queries']} queries)"
                )
            mem = srch.get("memory", {})
            lines.append(
                f"  resident overhead {num(mem.get('resident_overhead_bytes_per_vector'), 0)} B/vector, "
                f"disk {num(srch.get('disk_bytes_per_vector'), 0)} B/vector"
            )
    service = results.get("service")
    if service:
        lines.extend(_service_text(service))
    evaluation = results.get("eval")
    if evaluation:
        lines.extend(_eval_text(evaluation))
    lines.append("")
    lines.append("targets:")
    for t in results.get("targets", []):
        mark = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"  [{mark:>12}] {t['target']}: {t['shown']} (goal {t['goal']})")
    return "\n".join(lines)


def _service_text(service: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"REST service ({_get(service, 'collection', 'files')} documents, "
        f"{_get(service, 'collection', 'chunks')} chunks; the client on the same cores)",
    ]
    lines.append(f"{'route':<12}{'c':>4}{'requests':>10}{'req/s':>10}{'p50':>13}{'p99':>13}{'errors':>8}")
    for route in ("search", "ask"):
        for level in service.get(route) or []:
            latency = level.get("latency", {})
            lines.append(
                f"{route:<12}{level['concurrency']:>4}{level['requests']:>10}"
                f"{num(level.get('requests_per_s')):>10}{ms(latency.get('p50_ms')):>13}"
                f"{ms(latency.get('p99_ms')):>13}{level['errors']:>8}"
            )
    over = service.get("overhead", {})
    search, ask = over.get("search", {}), over.get("ask", {})
    lines.append(
        f"HTTP layer at c=1: search {ms(search.get('http_p50_ms'))} vs {ms(search.get('in_process_p50_ms'))} "
        f"in process (alternating); ask {ms(ask.get('http_p50_ms'))} vs {ms(ask.get('in_process_p50_ms'))}, "
        f"client minus server total {ms(ask.get('client_minus_server_p50_ms'))}"
    )
    stream = service.get("stream", {})
    lines.append(
        f"SSE: first token at the client {ms(stream.get('client_ttft_p50_ms'))}, "
        f"{ms(stream.get('delay_p50_ms'))} after the generator (max {ms(stream.get('delay_max_ms'))}), "
        f"{num(stream.get('client_tokens_per_s_p50'), 1)} tokens/s"
    )
    generator = service.get("generator", {})
    prompts = ", ".join(
        f"{p.get('prompt_tokens')}-token prompt: first token {ms(p.get('ttft_ms'))}, "
        f"{num(p.get('decode_tokens_per_s'), 1)} tokens/s"
        for p in (generator.get("prompts") or {}).values()
    )
    lines.append(f"generator: loads in {num(generator.get('load_s'), 1)}s; {prompts}")
    memory = service.get("memory", {})
    soak = memory.get("soak", {})
    lines.append(
        f"server RSS after warm-up {mib(memory.get('rss_after_warmup_bytes'))}; "
        f"{soak.get('requests', 0):,} searches: {mib(soak.get('rss_before_bytes'))} → "
        f"{mib(soak.get('rss_after_bytes'))} ({soak.get('growth_pct', 0):+.1f} %)"
    )
    return lines


_EVAL_SYSTEMS = [
    ("ragkit", "ragkit (evaluate())"),
    ("langchain", "LangChain tutorial"),
    ("llamaindex", "LlamaIndex defaults"),
]


def _eval_text(evaluation: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"evaluation ({_get(evaluation, 'ragkit', 'sample', 'questions', default='?')} squad-dev questions, top 10)",
    ]
    lines.append(
        f"{'system':<22}{'hit@1':>8}{'hit@5':>8}{'rec@5':>8}{'mrr':>8}{'s/question':>12}{'total s':>9}{'peak RSS':>11}"
    )
    for key, label in _EVAL_SYSTEMS:
        run = evaluation.get(key)
        if not run:
            lines.append(f"{label:<22} FAILED")
            continue
        m = run.get("metrics", {})
        lines.append(
            f"{label:<22}{pct(m.get('answer_hit@1')):>8}{pct(m.get('answer_hit@5')):>8}"
            f"{pct(m.get('recall@5')):>8}{pct(m.get('mrr')):>8}{ms(run['seconds_per_question'] * 1000):>12}"
            f"{num(run.get('total_s'), 1):>9}{mib(run.get('peak_rss_bytes')):>11}"
        )
    check = _get(evaluation, "ragkit", "self_check")
    if check:
        lines.append(
            f"converted-hit scoring of ragkit's own hits: {'identical' if check['identical'] else 'DIFFERENT'}"
            f" to the suite's report; same question ids: {_same_ids(evaluation)}"
        )
    for size in _get(evaluation, "overhead", "sizes") or []:
        where = size["where_added_s"]
        lines.append(
            f"overhead at {size['questions']:,} questions: bare {size['bare_s']:.2f}s, suite "
            f"{size['suite_s']:.2f}s ({size['overhead_pct']:+.1f} %); scoring {where['score']:.2f}s, "
            f"reports {where['write_reports']:.2f}s, ingest check + open "
            f"{where['ingest_check_and_open']:.2f}s"
        )
    judge = evaluation.get("judge") or {}
    c = judge.get("comparison")
    if c:
        cold, warm = judge["cold"], judge["warm"]
        lines.append(
            f"judge cache: cold {cold['evaluate_s']:.1f}s ({cold['judge_calls']} judge calls), warm "
            f"{warm['evaluate_s']:.1f}s ({warm['judge_calls']} calls, {warm['judge_cache_hits']} cache hits): "
            f"{fx(c['evaluate_ratio'])} whole run, {fx(c['scoring_ratio'])} scoring; identical "
            f"{c['identical']}; NaN {cold['sanity']['nan'] + warm['sanity']['nan']}"
        )
    return lines


def _same_ids(evaluation: dict[str, Any]) -> str:
    digests = {_get(evaluation, key, "sample", "ids_sha256") for key, _ in _EVAL_SYSTEMS if evaluation.get(key)}
    return "–" if not digests else ("yes" if len(digests) == 1 else "**no**")


_INGEST_ROWS = [
    ("ragkit (defaults)", "ragkit"),
    ("LangChain tutorial", "langchain"),
    ("LlamaIndex defaults", "llamaindex"),
    ("LlamaIndex, chunk_size=256", "llamaindex_fit"),
    ("raw encode fp32", "encode_fp32"),
    ("raw encode bf16", "encode_bf16"),
]
_RETRIEVAL_ROWS = [
    ("ragkit dense", "ragkit", "dense"),
    ("ragkit lexical (BM25)", "ragkit", "lexical"),
    ("LangChain (FAISS)", "langchain", "dense"),
    ("LlamaIndex", "llamaindex", "dense"),
    ("LlamaIndex, chunk_size=256", "llamaindex_fit", "dense"),
]


# -- Markdown ------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any], notes: str = DEFAULT_NOTES) -> str:
    meta = results["meta"]
    machine = meta["machine"]
    ingest = results.get("ingest", {})
    r = ratios(results)
    parts: list[str] = []
    parts.append("# Benchmarks\n")
    parts.append(
        "ragkit against the LangChain tutorial pipeline and LlamaIndex's defaults on the same documents with "
        "the same embedding model, ragkit's vector stores at a million vectors, the REST service "
        "(`ragkit serve`) under load, and evaluation suites (the three frameworks scored on the same squad-dev "
        "questions, the suite's own overhead, a warm judge cache). Everything below the "
        "notes is generated by `evaluation/benchmarks/run_all.py` from `bench-out/results.json`; re-running "
        "rewrites it and keeps the notes.\n"
    )
    parts.append("## Running it\n")
    parts.append(
        "```bash\n"
        "scripts/setup.sh                                                  # .venv with the [bench] extras\n"
        ".venv/bin/python evaluation/benchmarks/run_all.py                 # full run, writes this page\n"
        ".venv/bin/python evaluation/benchmarks/run_all.py --quick         # tiny sizes, a smoke test\n"
        ".venv/bin/python evaluation/benchmarks/run_all.py --only service  # the REST service step, merged in\n"
        ".venv/bin/python evaluation/benchmarks/run_all.py --only eval     # the evaluation step, merged in\n"
        "```\n"
    )
    parts.append(
        "The dataset is found at `../shared/datasets/squad-dev` beside the repository; `--dataset` or "
        "`RAGKIT_BENCH_DATASET` points elsewhere. `--skip milvus`, `--store-n N` and `--milvus-n N` shorten the "
        "store part; `--skip ingest|store|service|eval` leaves a part out, and `--only service` (or `--only eval`) "
        "runs that step alone and merges it into the existing `bench-out/results.json`, keeping the other "
        "sections. Each step "
        "runs in its own process; the exact commands are listed at the end. Before each step "
        "the runner waits (up to `--max-wait` seconds) until other processes leave the CPU idle, and it records the "
        "CPU they used during the step.\n"
    )
    parts.append("## Notes\n")
    parts.append(f"{NOTES_START}\n{notes.strip()}\n{NOTES_END}\n")

    noisy = [s for s in meta.get("steps", []) if s.get("others_cpu_share", 0) > 0.05]
    quietness = "other processes used under 5 % of the CPU during every step"
    if not any("others_cpu_share" in s for s in meta.get("steps", [])):
        quietness = "not recorded"
    elif noisy:
        quietness = (
            "**other processes shared the CPU** during "
            + ", ".join(f"{s['name']} ({s['others_cpu_share']:.0%})" for s in noisy)
            + ": those timings are pessimistic"
        )
    parts.append("## The run\n")
    parts.append(
        _table(
            ["", ""],
            [
                ["date", meta["date"]],
                ["mode", f"{meta['mode']} ({meta.get('total_seconds', 0) / 60:.1f} minutes)"],
                [
                    "machine",
                    f"{machine['cpu']}, {machine['cores']} cores, {mib(machine.get('memory_bytes'))} memory, "
                    f"bf16 flags: {', '.join(machine.get('cpu_bf16') or ['none'])}",
                ],
                ["system", f"{machine['os']}, Python {machine['python']}"],
                ["torch threads", str(_get(ingest, "ragkit", "torch_threads", default="–"))],
                ["quietness", quietness],
                ["dataset", f"`{meta['dataset']}`"],
                *[
                    [
                        f"{m['step']} step",
                        f"run on its own on {m['date']} ({m['seconds'] / 60:.1f} minutes) and merged in: "
                        f"`{m['command']}`",
                    ]
                    for m in meta.get("merged", [])
                ],
            ],
        )
        + "\n"
    )
    versions = meta.get("versions", {})
    parts.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".\n")

    parts.append("## Targets\n")
    parts.append(
        _table(
            ["target", "goal", "measured", "met"],
            [
                [t["target"], t["goal"], t["shown"], {True: "yes", False: "**no**", None: "not measured"}[t["met"]]]
                for t in results.get("targets", [])
            ],
        )
        + "\n"
    )

    if ingest:
        parts.append(_ingest_section(results, r))
        parts.append(_retrieval_section(results))
    if results.get("store"):
        parts.append(_store_section(results))
    if results.get("service"):
        parts.append(_service_section(results["service"]))
    if results.get("eval"):
        parts.append(_eval_section(results["eval"]))
    if results.get("pipelines"):
        from pipelines_report import section as pipelines_section

        parts.append(pipelines_section(results["pipelines"]))
    parts.append("## Commands\n")
    commands = []
    for step in meta.get("steps", []):
        failed = "" if step["returncode"] == 0 else f", FAILED (exit {step['returncode']})"
        others = step.get("others_cpu_share")
        shared = f", other processes {others:.0%} of the CPU" if others else ""
        commands.append(f"{step['command']}   # {step['seconds']:.0f}s{shared}{failed}")
    parts.append("```bash\n" + "\n".join(commands) + "\n```\n")
    return "\n".join(parts)


def _ingest_section(results: dict[str, Any], r: dict[str, float | None]) -> str:
    ingest = results["ingest"]
    key, _ = ceiling(results)
    rk = ingest.get("ragkit") or {}
    files = _get(rk, "ingest", "files") or _get(ingest, "langchain", "ingest", "files")
    out = ["## Ingestion\n"]
    out.append(
        f"{files} squad-dev documents, ingested from a fresh store by each pipeline in its own process. The clock "
        "starts after imports and model loading (each model is warmed with one short text), and stops when the "
        "vectors are searchable (ragkit: also committed to disk, with the BM25 index built). Peak RSS is the "
        "process's `ru_maxrss`: imports and model included. The raw-encode rows are "
        "`SentenceTransformer.encode(texts, batch_size=32)` over ragkit's own chunk texts, nothing else, the best "
        "of its timed passes"
        + "".join(
            f"; {name.split('_')[1]} passes: "
            + ", ".join(f"{v:.1f}" for v in ingest[name]["passes_chunks_per_s"])
            + " chunks/s"
            for name in ("encode_fp32", "encode_bf16")
            if _get(ingest, name, "passes_chunks_per_s")
        )
        + ".\n"
    )
    rows = []
    for label, name in _INGEST_ROWS:
        row = ingest.get(name)
        if not row:
            continue
        data = row.get("ingest", row)
        if name == "ragkit":
            label += f", {_get(rk, 'embedder', 'precision', default='?')}"
        elif name in ("langchain", "llamaindex", "llamaindex_fit"):
            label += ", fp32"
        if name == key:
            label += " — **the ceiling**"
        cut = data.get("truncation") or {}
        rows.append(
            [
                label,
                str(data.get("files", "–")),
                str(data.get("chunks", "–")),
                num(cut.get("tokens_mean"), 0),
                "–" if not cut else f"{cut['tokens_cut_share']:.1%}",
                num(data.get("seconds"), 1),
                num(data.get("documents_per_s"), 3),
                num(data.get("chunks_per_s")),
                mib(data.get("peak_rss_bytes")),
                mib(data.get("rss_before_ingest_bytes")),
            ]
        )
    out.append(
        _table(
            [
                "pipeline",
                "files",
                "chunks",
                "tokens/chunk",
                "tokens cut",
                "seconds",
                "documents/s",
                "chunks/s",
                "peak RSS",
                "RSS before ingest",
            ],
            rows,
        )
        + "\n"
    )
    out.append(
        "*tokens cut*: the share of the chunks' tokens past the model's 256-token input limit, which the model "
        "never sees (counted with its tokenizer; LlamaIndex embeds each chunk's metadata too). The "
        "`chunk_size=256` LlamaIndex row is not a default and not in the targets: it shows LlamaIndex doing the "
        "same work as the others.\n"
    )
    out.append(
        f"Ratios: ragkit / LangChain **{fx(r['ragkit_vs_langchain'])}** and ragkit / LlamaIndex "
        f"**{fx(r['ragkit_vs_llamaindex'])}** in documents/s (the pipelines cut different numbers of chunks, so "
        f"documents/s compares the same corpus; ragkit / LlamaIndex with chunk_size=256 "
        f"{fx(r['ragkit_vs_llamaindex_fit'])}); ragkit / raw-encode ceiling ({key}) **{fx(r['ragkit_vs_ceiling'])}** "
        f"and ragkit / raw fp32 encode {fx(r['ragkit_vs_encode_fp32'])} in chunks/s.\n"
    )
    stages = _get(rk, "ingest", "report", "stage_seconds")
    if stages:
        out.append(
            "ragkit's own stage times (seconds; loading and splitting overlap with embedding in a producer "
            "thread): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) + ".\n"
        )
    out.append("### Re-ingest of the unchanged folder\n")
    re = ingest.get("reingest") or {}
    rows = [
        ["first ingest", num(_get(rk, "ingest", "seconds"), 2), "1.00x"],
        ["again, same process (`col.ingest`)", num(_get(rk, "reingest_warm", "seconds"), 3), fx(r["reingest_speedup"])],
    ]
    if re:
        api = re.get("python_api", {})
        rows.append(
            [
                f"again, fresh process: import {api.get('import_s', 0):.2f} + open {api.get('open_s', 0):.2f} + "
                f"ingest {api.get('ingest_s', 0):.2f}",
                num(api.get("total_s"), 2),
                fx(r["reingest_speedup_fresh_process"]),
            ]
        )
        rows.append(
            [
                "again, `ragkit ingest` CLI (whole command)",
                num(_get(re, "cli", "seconds"), 2),
                fx(r["reingest_speedup_cli"]),
            ]
        )
    out.append(_table(["run", "seconds", "speed-up"], rows) + "\n")
    out.append(
        "LangChain's tutorial pipeline and LlamaIndex's `VectorStoreIndex.from_documents` have no incremental "
        "mode: running them again re-embeds everything.\n"
    )
    out.append("### Defaults used\n")
    lines = []
    cfg = rk.get("config", {})
    if cfg:
        lines.append(
            f"- ragkit: `Collection.create(name)` with no config: splitter `{cfg.get('splitter')}`, "
            f"embedder `{cfg.get('embedder')}` ({_get(rk, 'embedder', 'precision')} on "
            f"{_get(rk, 'embedder', 'device')}, encode batch {_get(rk, 'embedder', 'batch_size')}, "
            f"{cfg.get('embed_batch_size')} chunks per embed call), store `{cfg.get('store')}` "
            f"({rk.get('store_index')} index at this size), lexical `{cfg.get('lexical')}`, embedding cache "
            f"{'on' if cfg.get('embedding_cache') else 'off'}."
        )
    for name, label in (("langchain", "LangChain"), ("llamaindex", "LlamaIndex")):
        d = _get(ingest, name, "defaults")
        if d:
            lines.append(f"- {label}: " + "; ".join(f"{k}: {v}" for k, v in d.items()) + ".")
    out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def _retrieval_section(results: dict[str, Any]) -> str:
    ingest = results["ingest"]
    rk = _get(ingest, "ragkit", "retrieval") or {}
    n = _get(rk, "dense", "questions") or _get(ingest, "langchain", "retrieval", "dense", "questions")
    out = ["## Retrieval\n"]
    out.append(
        f"answer-hit@k over {n} squad-dev questions: a question counts when one of the top k chunks contains a gold "
        "answer string (case-sensitive substring, as in open-domain QA; *normalised*: lower-cased, whitespace "
        "collapsed). Queries are embedded in one batch per system.\n"
    )
    rows = []
    for label, name, mode in _RETRIEVAL_ROWS:
        s = _get(ingest, name, "retrieval", mode)
        if not s:
            continue
        chunks = _get(ingest, name, "ingest", "chunks")
        rows.append(
            [
                label,
                pct(s["hit@1"]),
                pct(s["hit@5"]),
                pct(s["hit@1_normalised"]),
                pct(s["hit@5_normalised"]),
                str(chunks),
                num(s.get("queries_per_s"), 1),
            ]
        )
    out.append(
        _table(
            ["system", "hit@1", "hit@5", "hit@1 normalised", "hit@5 normalised", "chunks", "queries/s (batch)"], rows
        )
        + "\n"
    )
    out.append("### Search latency\n")
    out.append(
        "Single queries on pre-embedded vectors (embedding excluded), top 5, over the squad-dev collection; "
        "ragkit's `store.search` and the raw `store._index.search` run on the same vectors in alternating order.\n"
    )
    rows = []
    for label, entry in (
        ("ragkit `FaissStore.search`", rk.get("search_store")),
        (f"raw FAISS `{rk.get('raw_index', 'index')}.search`", rk.get("search_raw_faiss")),
        ("ragkit `col.search` end to end (embedding included)", rk.get("search_end_to_end")),
        ("LangChain `similarity_search_by_vector`", _get(ingest, "langchain", "retrieval", "search_store")),
        ("LlamaIndex `retriever.retrieve` (embedding given)", _get(ingest, "llamaindex", "retrieval", "search_store")),
    ):
        if entry and entry.get("n"):
            rows.append([label, ms(entry.get("p50_ms")), ms(entry.get("p99_ms")), str(entry["n"])])
    out.append(_table(["search", "p50", "p99", "queries"], rows) + "\n")
    if rk.get("search_overhead_p50_ms") is not None:
        out.append(f"ragkit's overhead over the raw FAISS call at p50: **{ms(rk['search_overhead_p50_ms'])}**.\n")
    return "\n".join(out)


def _store_section(results: dict[str, Any]) -> str:
    store = results["store"]
    truth = store.get("truth") or {}
    out = ["## Vector stores at scale\n"]
    filters = truth.get("filters", {})
    described = "; ".join(
        f"{name}: `{f['expression']}` ({f['share'] * 100:.1f} %)" for name, f in filters.items() if f["expression"]
    )
    out.append(
        f"{truth.get('n', 0):,} synthetic 384-d unit vectors (a seeded mixture of 2,000 Gaussian clusters) with "
        "metadata `category` (20 values), `year` (2000-2024) and `lang` (5 values, en 50 %), inserted through each "
        "store's `upsert` in batches of 10,000 chunks, then flushed. Queries: held-out points drawn the same way, "
        f"one at a time, top 10; filters: {described}. Recall@10 is against exact brute-force search (FAISS flat) "
        "over the same vectors and filter. Resident memory: RSS after opening the store in a fresh process and "
        "running the unfiltered queries, minus RSS before opening, per vector, minus the 1,536 bytes of the float32 "
        "vector itself. Filtered searches stop after a time budget; the query counts are given.\n"
    )
    header = ["", *(name for name in ("faiss", "milvus") if _get(store, name, "insert"))]
    if len(header) == 1:
        return "\n".join(out)
    names = header[1:]

    def row(label: str, fn: Any) -> list[str]:
        cells = []
        for name in names:
            try:
                cells.append(fn(store[name]))
            except (KeyError, TypeError, AttributeError):
                cells.append("–")
        return [label, *cells]

    def search(entry: dict[str, Any], flt: str) -> dict[str, Any]:
        return entry["search"]["search"][flt]

    rows = [
        row(
            "store class and options",
            lambda s: f"{s['insert']['index']['class']} {s['insert']['options'] or '(defaults)'}",
        ),
        row("index", lambda s: _index_text(s["insert"]["index"])),
        row("vectors", lambda s: f"{s['insert']['n']:,}"),
        row("insert rate (upsert)", lambda s: f"{s['insert']['insert_vectors_per_s']:,.0f} vectors/s"),
        row(
            "insert rate incl. flush and close",
            lambda s: f"{s['insert']['insert_vectors_per_s_with_flush']:,.0f} vectors/s",
        ),
        row("open (fresh process)", lambda s: f"{s['search']['open_s']:.1f} s"),
    ]
    for flt in ("none", "selective", "broad"):
        label = "no filter" if flt == "none" else f"filter {flt}"
        rows.append(row(f"search p50 / p99, {label}", lambda s, f=flt: _latency_cell(search(s, f))))
        rows.append(row(f"recall@10, {label}", lambda s, f=flt: pct(search(s, f).get("recall@10"))))
    rows.append(
        row(
            "raw FAISS index search p50 / p99, no filter",
            lambda s: (
                f"{ms(search(s, 'none')['raw_index_latency']['p50_ms'])} / "
                f"{ms(search(s, 'none')['raw_index_latency']['p99_ms'])}"
            ),
        )
    )
    rows.append(
        row(
            "resident memory per vector beyond the vector",
            lambda s: f"{s['search']['memory']['resident_overhead_bytes_per_vector']:,.0f} B",
        )
    )
    rows.append(
        row(
            "… after the filtered searches too",
            lambda s: f"{s['search']['memory']['resident_overhead_after_filters_bytes_per_vector']:,.0f} B",
        )
    )
    rows.append(row("disk per vector", lambda s: f"{s['search']['disk_bytes_per_vector']:,.0f} B"))
    rows.append(row("peak RSS while inserting", lambda s: mib(s["insert"]["peak_rss_bytes"])))
    out.append(_table(header, rows) + "\n")
    return "\n".join(out)


def _service_section(service: dict[str, Any]) -> str:
    """The REST service: load per route and concurrency, the HTTP layer's cost, streaming, generator, memory."""
    versions = service.get("versions", {})
    settings = _get(service, "server", "settings") or {}
    generator = service.get("generator") or {}
    sizes = service.get("sizes") or {}
    collection = service.get("collection") or {}
    parser = "httptools" if versions.get("httptools", "missing") != "missing" else "h11"
    loop = "uvloop" if versions.get("uvloop", "missing") != "missing" else "asyncio"
    out = ["## REST service\n"]
    out.append(
        f"`ragkit serve` (uvicorn {versions.get('uvicorn', '?')} with {parser} and the {loop} loop, one worker, "
        f"FastAPI {versions.get('fastapi', '?')}; default settings: {settings.get('max_concurrent_asks', '?')} answers "
        f"generated at once, {settings.get('blocking_threads', '?')} threads for blocking work, a JSON access-log "
        f"line per request) as a subprocess on a loopback port, over a fresh store holding "
        f"{collection.get('files', '?')} squad-dev documents ({collection.get('chunks', '?')} chunks). It answered "
        f"`/readyz` {num(_get(service, 'server', 'startup_s'), 1)} s after starting; warm-up: first search "
        f"{num(_get(service, 'server', 'first_search_s'), 1)} s (collection opened, embedder loaded), first ask "
        f"{num(_get(service, 'server', 'first_ask_s'), 1)} s (generator loaded). The client is an "
        f"`httpx.AsyncClient` {versions.get('httpx', '')} (HTTP/1.1 keep-alive, one connection per concurrent "
        "request) in the benchmark's own process, on the same cores as the server: its CPU seconds are in the "
        f"table. Searches: top {service.get('search_top_k', 5)} dense, squad-dev questions in turn (the embedder "
        "runs for every query; query vectors are not cached). Asks: the `basic` pipeline, `top_k` "
        f"{sizes.get('ask_top_k', '?')}, `max_tokens` {service.get('ask_max_tokens', '?')}, answered by the packaged "
        f"{generator.get('model', 'generator')} on the {generator.get('device', 'cpu')} "
        f"({generator.get('dtype', '?')}). An error is an exception or any status but 200; latencies are over the "
        "successful requests.\n"
    )
    out.append("### Load\n")
    rows = []
    for route in ("search", "ask"):
        for level in service.get(route) or []:
            latency = level.get("latency", {})
            done = latency.get("n") or 0
            rows.append(
                [
                    f"`{route}`",
                    str(level["concurrency"]),
                    f"{level['requests']:,}",
                    num(level.get("requests_per_s")),
                    ms(latency.get("p50_ms")),
                    ms(latency.get("p99_ms")),
                    str(level["errors"]),
                    ms(level["server_cpu_s"] * 1000 / done) if done else "–",
                    ms(level["client_cpu_s"] * 1000 / done) if done else "–",
                ]
            )
    out.append(
        _table(
            [
                "route",
                "concurrency",
                "requests",
                "requests/s",
                "p50",
                "p99",
                "errors",
                "server CPU / request",
                "client CPU / request",
            ],
            rows,
        )
        + "\n"
    )
    asks = service.get("ask") or []
    if asks:
        out.append(
            "Answers are bounded by the model: the generator writes one answer at a time on these cores, so more "
            "concurrency only lengthens the queue, and an ask's latency at concurrency c is mostly its wait behind "
            "the others. The server's own `timings.total` per answer (median): "
            + ", ".join(f"{ms(_get(a, 'server_total', 'p50_ms'))} at c={a['concurrency']}" for a in asks)
            + f" (it starts once one of the {settings.get('max_concurrent_asks', '?')} answer slots is taken: the "
            "wait for the model behind the other slot holders is in it, the wait for a slot is not).\n"
        )
    out.append("### What the HTTP layer adds\n")
    over = service.get("overhead") or {}
    search, separate, ask = over.get("search") or {}, over.get("search_separate_runs") or {}, over.get("ask") or {}

    def added(entry: dict[str, Any]) -> str:
        value = entry.get("overhead_p50_ms")
        return "–" if value is None else f"{value:+.2f} ms"

    rows = [
        [
            f"search, one at a time: the same {search.get('questions', '?')} questions in process and over HTTP, "
            "alternating",
            ms(search.get("in_process_p50_ms")),
            ms(search.get("http_p50_ms")),
            added(search),
            fx(search.get("ratio")),
        ],
        [
            "… of which inside the server's app (access-log `duration_ms`: from the outermost middleware to the "
            "response's last byte; not uvicorn's parsing, the socket or the client)",
            ms(search.get("in_process_p50_ms")),
            ms(search.get("server_app_p50_ms")),
            "–"
            if search.get("server_app_p50_ms") is None or search.get("in_process_p50_ms") is None
            else f"{search['server_app_p50_ms'] - search['in_process_p50_ms']:+.2f} ms",
            fx(_ratio(search.get("server_app_p50_ms"), search.get("in_process_p50_ms"))),
        ],
        [
            "search, separate runs: `col.search` before the server started vs the load run at c=1",
            ms(separate.get("in_process_p50_ms")),
            ms(separate.get("http_p50_ms")),
            added(separate),
            fx(separate.get("ratio")),
        ],
        [
            "ask, separate runs: `pipeline.ask` vs the load run at c=1",
            ms(ask.get("in_process_p50_ms")),
            ms(ask.get("http_p50_ms")),
            added(ask),
            fx(ask.get("ratio")),
        ],
        [
            "ask at c=1: the client's latency minus the server's own `timings.total`, per request",
            "–",
            "–",
            "–" if ask.get("client_minus_server_p50_ms") is None else f"+{ask['client_minus_server_p50_ms']:.2f} ms",
            "–",
        ],
    ]
    out.append(_table(["p50", "in process", "over HTTP", "added", "ratio"], rows) + "\n")
    out.append(
        "The alternating run is the fair reading: both sides see the machine in the same state. Runs minutes apart "
        "also measure what the neighbours did in between, and an answer's time is dominated by the model.\n"
    )
    stream = service.get("stream") or {}
    out.append("### Streaming\n")
    out.append(
        f"{stream.get('questions', 0)} asks with `stream: true`, one at a time. The client's clock runs from sending "
        "the request to the first `token` event; the server's is the answer's own `retrieve + assemble + "
        "first_token` (pipeline start to the generator's first token). The difference bounds the delay between "
        "the generator producing the first token and the client receiving it (it also holds the request's trip in "
        "and its parsing).\n"
    )
    out.append(
        _table(
            ["", "median", "max"],
            [
                [
                    "client: first `token` event",
                    ms(stream.get("client_ttft_p50_ms")),
                    ms(
                        max(
                            (r["client_ttft_ms"] for r in stream.get("runs", []) if "client_ttft_ms" in r), default=None
                        )
                    ),
                ],
                ["server: retrieve + assemble + first token", ms(stream.get("server_ttft_p50_ms")), "–"],
                ["**difference**", ms(stream.get("delay_p50_ms")), ms(stream.get("delay_max_ms"))],
                ["tokens/s at the client after the first", num(stream.get("client_tokens_per_s_p50"), 1), "–"],
            ],
        )
        + "\n"
    )
    out.append("### The generator alone\n")
    out.append(
        f'{generator.get("model", "The generator")} built with `registry.build("generator", {{"type": '
        f'"transformers"}})` in the benchmark process: the first `load()` took '
        f"**{num(generator.get('load_s'), 1)} s** (torch already imported by the embedder). Prompts: the "
        "pipeline's template around a prefix of the documents, cut to about 300 and 1,500 tokens; at most "
        f"{generator.get('new_tokens', '?')} new tokens, greedy (it may stop earlier), median of "
        f"{generator.get('repeats', '?')}.\n"
    )
    rows = [
        [
            str(p.get("prompt_tokens")),
            ms(p.get("ttft_ms")),
            num(p.get("decode_tokens_per_s"), 1),
            num(p.get("tokens_per_s"), 1),
            ", ".join(str(t) for t in p.get("completion_tokens", [])),
        ]
        for p in (generator.get("prompts") or {}).values()
    ]
    out.append(
        _table(["prompt tokens", "first token", "tokens/s after the first", "tokens/s overall", "tokens made"], rows)
        + "\n"
    )
    local = service.get("in_process") or {}
    stages = _get(local, "ask", "stage_p50_ms") or {}
    out.append(
        f"In process, over the same collection: `col.search` p50 {ms(_get(local, 'search', 'p50_ms'))}, p99 "
        f"{ms(_get(local, 'search', 'p99_ms'))} ({_get(local, 'search', 'n', default=0)} questions); "
        f"`pipeline.ask` p50 {ms(_get(local, 'ask', 'p50_ms'))}, p99 {ms(_get(local, 'ask', 'p99_ms'))} "
        f"({_get(local, 'ask', 'n', default=0)} questions, {num(_get(local, 'ask', 'completion_tokens_mean'), 1)} "
        "tokens on average), stage medians: " + ", ".join(f"{k} {ms(v)}" for k, v in stages.items()) + ".\n"
    )
    memory = service.get("memory") or {}
    soak = memory.get("soak") or {}
    out.append("### Memory\n")
    growth = soak.get("growth_pct")
    out.append(
        _table(
            ["server", "RSS"],
            [
                ["after warm-up (embedder and generator loaded)", mib(memory.get("rss_after_warmup_bytes"))],
                [f"before {soak.get('requests', 0):,} searches at concurrency 8", mib(soak.get("rss_before_bytes"))],
                ["after them", mib(soak.get("rss_after_bytes")) + ("" if growth is None else f" ({growth:+.1f} %)")],
                ["highest sample during them", mib(soak.get("rss_max_bytes"))],
                ["at the end, after the load and ask runs", mib(memory.get("rss_end_bytes"))],
                ["peak (`VmHWM`)", mib(memory.get("peak_rss_bytes"))],
            ],
        )
        + "\n"
    )
    samples = soak.get("samples") or []
    if samples:
        out.append(
            f"RSS every {sizes.get('soak_sample_every', '?'):,} searches: "
            + ", ".join(f"{s['rss_bytes'] / 2**20:,.0f}" for s in samples)
            + f" MiB; {num(soak.get('requests_per_s'))} searches/s, {soak.get('errors', 0)} errors.\n"
        )
    return "\n".join(out)


def _eval_section(evaluation: dict[str, Any]) -> str:
    """The evaluation step: three systems on one sample, the suite's overhead, the judge cache."""
    out = ["## Evaluation\n"]
    systems = [(key, label, evaluation.get(key)) for key, label in _EVAL_SYSTEMS]
    ran = [(key, label, run) for key, label, run in systems if run]
    first = ran[0][2] if ran else {}
    sample = first.get("sample") or {}
    out.append(
        f"The squad-dev suite (`evaluation/suites/squad-dev.yaml`) on a sample of {sample.get('questions', '?'):,} of "
        f"its {sample.get('of', '?'):,} questions, the sample ragkit's suite machinery draws with seed "
        f"{sample.get('seed', '?')}; the same question ids for every system: {_same_ids(evaluation)}. Each system runs "
        "in its own process from an empty store, with the packaged all-MiniLM-L6-v2 and the top 10 hits per "
        "question. **ragkit** runs `ragkit.evaluation.evaluate()` on the suite reduced to its retrieval-only "
        "`dense` pipeline (the default collection recipe). **LangChain** (the RAG tutorial's indexing) and "
        "**LlamaIndex** (its defaults), built as in the ingestion section, retrieve with their own code; each "
        "retrieved document or node becomes a hit (its file, text and character span in the file) and is scored "
        "and reported by ragkit's own evaluation code (`score_samples`, `aggregate`, `write_reports`), so the "
        "scores differ only by what each framework ingested and retrieved. answer-hit@k: a top-k chunk contains "
        "a reference answer verbatim; recall@5: the gold paragraph overlaps a top-5 chunk; MRR: over the 10 hits.\n"
    )
    if ran:

        def cell(fn: Any) -> list[str]:
            cells = []
            for _, _, run in systems:
                try:
                    cells.append(fn(run) if run else "failed")
                except (KeyError, TypeError):
                    cells.append("–")
            return cells

        rows = [
            ["chunks", *cell(lambda r: f"{r['chunks']:,}")],
            ["answer-hit@1", *cell(lambda r: pct(r["metrics"]["answer_hit@1"]))],
            ["answer-hit@5", *cell(lambda r: pct(r["metrics"]["answer_hit@5"]))],
            ["answer-hit@10", *cell(lambda r: pct(r["metrics"]["answer_hit@10"]))],
            ["recall@5", *cell(lambda r: pct(r["metrics"]["recall@5"]))],
            ["MRR", *cell(lambda r: pct(r["metrics"]["mrr"]))],
            [
                "**seconds per question** (whole evaluation)",
                *cell(lambda r: f"**{ms(r['seconds_per_question'] * 1000)}**"),
            ],
            ["whole evaluation", *cell(lambda r: f"{r['total_s']:.1f} s")],
            ["… loading the suite and its questions", *cell(lambda r: f"{r['parts_s']['questions']:.2f} s")],
            ["… ingest (from an empty store)", *cell(lambda r: f"{r['parts_s']['ingest']:.1f} s")],
            ["… retrieve", *cell(lambda r: f"{r['parts_s']['retrieve']:.2f} s")],
            [
                "… turn their results into ragkit hits (file offsets checked)",
                *cell(lambda r: f"{r['parts_s']['convert']:.2f} s" if "convert" in r["parts_s"] else "–"),
            ],
            ["… score (13 metrics)", *cell(lambda r: f"{r['parts_s']['score']:.2f} s")],
            ["… write report.json / .md / .html", *cell(lambda r: f"{r['parts_s']['report']:.2f} s")],
            ["not counted: imports", *cell(lambda r: f"{r['setup_s']['import_s']:.1f} s")],
            ["not counted: loading the model", *cell(lambda r: f"{r['setup_s']['load_model_s']:.1f} s")],
            ["peak RSS (process)", *cell(lambda r: mib(r.get("peak_rss_bytes")))],
            ["metric values failed / NaN", *cell(lambda r: f"{r['sanity']['failed']} / {r['sanity']['nan']}")],
        ]
        out.append(_table(["", *(label for _, label, _ in systems)], rows) + "\n")
        check = _get(evaluation, "ragkit", "self_check") or {}
        notes = []
        if check:
            notes.append(
                f"Self-check: ragkit's own hits, turned into plain hits the same way (file, text, span) and scored by "
                f"the same code as the other two, give {'the same' if check['identical'] else '**different**'} "
                f"values as the suite's report for all {check['metrics_compared']} metrics"
                + (
                    f" and all {check['sample_values_compared']:,} per-sample values"
                    if check.get("sample_values_compared") and not check.get("sample_values_differing")
                    else ""
                )
                + ("" if check["identical"] else f" ({', '.join(check['differences'])})")
                + "."
            )
        for key, label, run in ran:
            offsets = run.get("offsets")
            if offsets and key != "ragkit":
                notes.append(
                    f"{label}: {offsets['offset_matches_file']:,} of {offsets['hits_checked']:,} hits' text is in "
                    f"the file at the offsets the framework gave"
                    + (
                        f", {offsets['located_by_search']:,} located by searching the file"
                        if offsets["located_by_search"]
                        else ""
                    )
                    + (f", {offsets['not_found_in_file']:,} not found" if offsets["not_found_in_file"] else "")
                    + "."
                )
        reader = _get(evaluation, "llamaindex", "reader")
        if reader:
            notes.append(
                f"LlamaIndex's `SimpleDirectoryReader` made {reader['documents']} documents, "
                f"{reader['documents_equal_to_their_file']} of them the file's text unchanged (`.md` is read as plain "
                "text, one document per file, without `llama-index-readers-file`): node offsets are file offsets."
            )
        notes.append(
            "*Whole evaluation*: from loading the suite to the last report written; imports and loading the model "
            "(warmed with one short text) are apart, as in the ingestion section. ragkit's ingest includes creating "
            "the collection; its retrieval includes opening the store. LangChain and LlamaIndex are scored and "
            "reported by the same ragkit code, so their score and report times measure that code too; their peak "
            "RSS includes ragkit's evaluation modules."
        )
        out.append("\n\n".join(notes) + "\n")
    overhead = evaluation.get("overhead")
    if overhead:
        out.append("### What a retrieval-only suite adds to its retrievals\n")
        out.append(
            "One process, the collection ingested and the model warm. *bare*: the retrievals the suite runs, "
            f"`collection.search_many` over the same questions in the runner's batches of "
            f"{overhead.get('search_batch')}, top {overhead.get('top_k')}, dense, on a collection opened once, the "
            "hits kept as the runner keeps them. "
            "*suite*: `evaluate(suite, sample=N)` on the squad-dev suite's dense pipeline: it opens the collection, "
            "checks the folder for changes (nothing to ingest), retrieves, scores the 13 retrieval metrics and "
            "writes report.json, report.md and report.html. Alternating, "
            + ", ".join(
                f"{s.get('rounds_run', overhead.get('repeats'))} rounds at {s['questions']:,}"
                for s in overhead.get("sizes", [])
            )
            + "; the overhead is the median suite time over the median bare time. Loading the suite file and all "
            "its questions, once per run, is not in these numbers: "
            f"{num(overhead.get('suite_load_s'), 2)} s for {overhead.get('questions_total', 0):,} questions.\n"
        )
        rows = []
        for size in overhead.get("sizes", []):
            where = size["where_added_s"]
            rows.append(
                [
                    f"{size['questions']:,}",
                    f"{size['bare_s']:.2f} s",
                    f"{size['suite_s']:.2f} s",
                    f"**{size['overhead_pct']:+.1f} %**",
                    ", ".join(f"{v:+.1f}" for v in size["overhead_pct_per_round"]),
                    f"{where['score']:.2f} s",
                    f"{where['write_reports']:.2f} s",
                    f"{where['ingest_check_and_open']:.2f} s",
                    f"{where['retrieval_difference']:+.2f} s",
                    mib(size.get("report_bytes")),
                ]
            )
        out.append(
            _table(
                [
                    "questions",
                    "bare retrievals",
                    "whole suite",
                    "overhead",
                    "per round (%)",
                    "scoring",
                    "writing the reports",
                    "ingest check + open",
                    "retrieval difference",
                    "reports",
                ],
                rows,
            )
            + "\n"
        )
    judge = evaluation.get("judge") or {}
    if judge.get("comparison"):
        out.append(_judge_section(judge, evaluation.get("judge_answers") or {}))
    return "\n".join(out)


def _judge_section(judge: dict[str, Any], with_answers: dict[str, Any]) -> str:
    suite, cold, warm, c = judge["suite"], judge["cold"], judge["warm"], judge["comparison"]
    answers = with_answers.get("warm-answers")
    ca = with_answers.get("comparison") or {}
    runs = [cold, warm, *([answers] if answers else [])]
    options = suite.get("judge_options", {})
    pipelines = ", ".join(
        f"`{p['name']}` ({'retrieval only' if p['kind'] == 'retrieval' else 'RAG, recipe ' + str(p.get('recipe'))}, "
        f"top {p['top_k']})"
        for p in suite["pipelines"]
    )
    out = ["### Re-running an LLM-judged suite with a warm judge cache\n"]
    out.append(
        f"The smoke suite's documents and {suite['questions']} of its questions (`{suite['based_on']}`), pipelines "
        f"{pipelines}, metrics "
        + ", ".join(f"`{m}`" for m in suite["metrics"])
        + ", the judged ones ("
        + ", ".join(suite["judged_metrics"])
        + f") judged by the packaged local generator "
        f"(`{json.dumps(suite.get('judge'))}`, SmolLM2-135M) with `max_tokens` {options.get('max_tokens')}, "
        f"`retries` {options.get('retries')} (one re-ask of an unparsable answer), `concurrency` "
        f"{options.get('concurrency')}. First with empty caches and an empty store (*cold*), then again, each time "
        "in a fresh process, with the store and caches the first run left: *warm* with the judge cache only (the "
        "default: the RAG pipeline loads the generator and writes its answers again, greedy, so the same answers, "
        "and the judge's prompts hit the cache), and *warm + answers* with `answer_cache: true` too (the answers "
        "are replayed when pipeline, generator, question and retrieved hits are unchanged, so the generator is "
        "never loaded). The judge cache holds the judge's raw answers, so unparsable ones replay from it too.\n"
    )

    def seconds(run: dict[str, Any], pipeline: str, *keys: str) -> float:
        return float(sum(_get(run, "pipelines", pipeline, "seconds", key, default=0.0) for key in keys))

    def timed(label: str, values: list[float], bold: bool = False, digits: int = 1) -> list[str]:
        cells = [f"{v:.{digits}f} s" for v in values]
        ratios = [fx(_ratio(values[0], v)) for v in values[1:]]
        if bold:
            ratios = [f"**{r}**" for r in ratios]
        row = [label, cells[0]]
        for cell, ratio in zip(cells[1:], ratios, strict=True):
            row += [cell, ratio]
        return row

    def counted(label: str, values: list[Any]) -> list[str]:
        row = [label, str(values[0])]
        for value in values[1:]:
            row += [str(value), "–"]
        return row

    rows = [
        timed("**`evaluate()`, the whole run**", [r["evaluate_s"] for r in runs], bold=True),
        timed("… ingest (empty store / nothing changed)", [r["ingest"]["seconds"] for r in runs]),
    ]
    for p in suite["pipelines"]:
        name = p["name"]
        if p["kind"] == "retrieval":
            label = (
                f"… `{name}` (retrieval only): retrieve (the first search loads the embedder if ingest did not) "
                "and score"
            )
            rows.append(timed(label, [seconds(r, name, "warmup", "answer", "score") for r in runs], digits=2))
            continue
        label = f"… `{name}` (RAG): load the generator (unless the judge did) and write or replay the answers"
        rows.append(timed(label, [seconds(r, name, "warmup", "answer") for r in runs]))
        rows.append(timed(f"… `{name}`: score", [seconds(r, name, "score") for r in runs], digits=2))
    rest = [
        r["evaluate_s"] - r["ingest"]["seconds"] - sum(sum(p["seconds"].values()) for p in r["pipelines"].values())
        for r in runs
    ]
    rows += [
        timed("… the rest: creating (loads the embedder) or opening the collection, writing the reports", rest),
        timed("scoring, every metric of both pipelines", [r["scoring_s"] for r in runs], digits=2),
        timed("the process, imports included", [r["process_s"] for r in runs]),
        counted("judge calls (generator runs)", [r["judge_calls"] for r in runs]),
        counted("judge answers from the cache (or repeated within the run)", [r["judge_cache_hits"] for r in runs]),
        counted("RAG answers replayed from the answer cache", [r.get("answers_cached", 0) for r in runs]),
        counted("re-asks after an unparsable answer", [r["judge_retries"] for r in runs]),
        counted("entries in the judge cache after the run", [r.get("cache_entries") for r in runs]),
        counted(
            "metric values: scored / failed / NaN / null without a reason",
            ["{scored} / {failed} / {nan} / {null_without_reason}".format(**r["sanity"]) for r in runs],
        ),
    ]
    header = ["", "cold", "warm", "cold / warm"]
    if answers:
        header += ["warm + answers", "cold / warm + answers"]
    out.append(_table(header, rows) + "\n")
    again = judge.get("warm_again")
    if again:
        out.append(
            "*Warm* run a third time in its own process (models loaded, as in `ragkit serve` or a notebook): "
            f"**{again['evaluate_s']:.1f} s, {fx(_ratio(cold['evaluate_s'], again['evaluate_s']))} faster than cold**; "
            f"scoring {again['scoring_s']:.2f} s, the RAG answers {again['answer_s']:.1f} s, "
            f"{again['judge_calls']} judge calls; values "
            f"{'identical' if again['identical_to_warm'] else '**different**'}.\n"
        )
    compared = [("warm", c), *([("warm + answers", ca)] if ca else [])]
    out.append(
        "Per sample and metric, value and failure reason, against cold: "
        + "; ".join(
            f"{name} **{'identical' if cmp['identical'] else 'not identical'}** ({cmp['differing']} of "
            f"{cmp['compared']} differ, the RAG answers {'the same' if cmp.get('same_answers') else '**different**'})"
            for name, cmp in compared
        )
        + ".\n"
    )
    rows = []
    for name, entry in warm["per_metric"].items():
        reasons = "; ".join(f"{count}× {reason}" for reason, count in entry["reasons"].items()) or "–"
        rows.append([f"`{name}`", str(entry["scored"]), str(entry["failed"]), reasons.replace("|", "\\|")])
    out.append(_table(["metric (both pipelines)", "scored", "failed", "failure reasons"], rows) + "\n")
    return "\n".join(out)


def _latency_cell(entry: dict[str, Any]) -> str:
    if "error" in entry:
        return f"fails: `{entry['error'][:160]}`"
    latency = entry["latency"]
    return f"{ms(latency['p50_ms'])} / {ms(latency['p99_ms'])} ({entry['queries']} q)"


def _index_text(info: dict[str, Any]) -> str:
    if "faiss_index" not in info:
        return str(info.get("kind") or info.get("stats", {}).get("index", "see options"))
    parts = [f"{info.get('kind')} ({info['faiss_index']}"]
    if "nlist" in info:
        parts.append(f", nlist {info['nlist']}, nprobe {info.get('nprobe')}")
    return "".join(parts) + ")"


def existing_notes(path: Path) -> str:
    """The hand-written notes of an existing page (kept when the page is rewritten)."""
    if not path.exists():
        return DEFAULT_NOTES
    text = path.read_text(encoding="utf-8")
    start, end = text.find(NOTES_START), text.find(NOTES_END)
    if start < 0 or end < start:
        return DEFAULT_NOTES
    return text[start + len(NOTES_START) : end].strip() or DEFAULT_NOTES


def write_markdown(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results, existing_notes(path)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results.json written by run_all.py")
    parser.add_argument("--docs", help="Markdown page to (re)write")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    results["targets"] = targets(results)
    print(text_tables(results))
    if args.docs:
        write_markdown(results, Path(args.docs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
