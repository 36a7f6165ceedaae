"""The "Query pipelines" section of docs/benchmarks.md, rendered from pipelines_bench.py's JSON.

``report.py`` calls :func:`section` when ``results.json`` has a
``pipelines`` key (``run_all.py --only pipelines`` puts it there). Run on
its own, this module splices the section into an existing page without
touching the rest of it:

    .venv/bin/python evaluation/benchmarks/pipelines_report.py bench-out/steps/pipelines.json --page docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from formatting import get, table
from pipelines_bench import SYSTEMS

HEADING = "## Query pipelines"
LABELS = {key: label for key, label, _ in SYSTEMS}


def _n(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ms(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _hit(systems: dict[str, Any], key: str, metric: str) -> float | None:
    return get(systems, key, metric)


def _p50(systems: dict[str, Any], key: str) -> float | None:
    return get(systems, key, "latency", "p50_ms")


def _chunks(data: dict[str, Any], key: str) -> Any:
    ingest = data.get("ingest", {})
    row = data.get("systems", {}).get(key, {})
    if key.startswith("ragkit_"):
        return ingest.get(row.get("collection", ""), {}).get("chunks")
    return ingest.get(key.split("_", 1)[0], {}).get("chunks")


def drivers(data: dict[str, Any]) -> str:
    """One paragraph, from the numbers: what each stage added in quality and cost."""
    s = data.get("systems", {})
    parts = []
    dense1, bm1, hy1 = (_hit(s, k, "hit@1") for k in ("ragkit_dense", "ragkit_bm25", "ragkit_hybrid"))
    if None not in (dense1, bm1, hy1):
        better = "BM25" if bm1 >= dense1 else "dense"  # type: ignore[operator]
        parts.append(
            f"On SQuAD the answer usually shares rare words with the question, so {better} alone is the stronger "
            f"single retriever (hit@1 {max(dense1, bm1):.3f} vs {min(dense1, bm1):.3f}); fusing both lists by rank "
            f"gives {hy1:.3f}."  # type: ignore[type-var]
        )
    ce1, ce5, hy5 = _hit(s, "ragkit_hybrid_ce", "hit@1"), _hit(s, "ragkit_hybrid_ce", "hit@5"), None
    hy5 = _hit(s, "ragkit_hybrid", "hit@5")
    if None not in (ce1, hy1, ce5, hy5):
        parts.append(
            f"The cross-encoder, trained on the tune half's questions only, reorders the fused candidates: hit@1 "
            f"{hy1:.3f} → {ce1:.3f}, hit@5 {hy5:.3f} → {ce5:.3f}; it cannot add a chunk the retrievers missed, so "
            "hit@5 is bounded by the candidates' recall."
        )
        if ce1 < hy1:  # type: ignore[operator]
            parts[-1] += (
                " Here it makes the order worse than retrieval's own: the cross-encoder is undertrained (a few "
                "dozen steps fit in the training budget on the shared cores), so its scores are close to noise; "
                "the same folder gives the same collapse in LangChain and LlamaIndex."
            )
    e1, ece1 = _hit(s, "ragkit_e5_hybrid", "hit@1"), _hit(s, "ragkit_e5_hybrid_ce", "hit@1")
    if None not in (e1, hy1):
        parts.append(f"e5-small in place of MiniLM moves the fused hit@1 from {hy1:.3f} to {e1:.3f}")
        if ece1 is not None and ce1 is not None:
            parts[-1] += f" ({ce1:.3f} → {ece1:.3f} after the cross-encoder)."
        else:
            parts[-1] += "."
    p_hy, p_ce = _p50(s, "ragkit_hybrid"), _p50(s, "ragkit_hybrid_ce")
    if p_hy and p_ce:
        parts.append(
            f"Latency is the cross-encoder's: one forward pass per (question, chunk) pair, {p_ce:,.0f} ms p50 per "
            f"question against {p_hy:,.0f} ms for the fused retrieval alone, on CPU cores shared with other work."
        )
    lc, li = _hit(s, "langchain_ensemble", "hit@1"), _hit(s, "llamaindex_fusion", "hit@1")
    if None not in (lc, li, hy1):
        parts.append(
            f"Against the other frameworks' fused retrievers (LangChain {lc:.3f}, LlamaIndex {li:.3f} hit@1) the "
            "differences come from the parts around the same embedder: ragkit's BM25 (bm25s) lower-cases, stems "
            "and drops English stop words, as LlamaIndex's BM25Retriever (bm25s) does, while LangChain's "
            "BM25Retriever (rank_bm25) splits on whitespace with no lower-casing (its default preprocess_func); "
            "LangChain fuses the whole union of both lists, LlamaIndex and ragkit a cut list; and each "
            "framework chunks differently (see the chunk counts)."
        )
    return " ".join(parts)


def section(data: dict[str, Any]) -> str:
    """The Markdown section: the table, comparisons, targets, latency and load, how to reproduce, drivers."""
    s = data.get("systems", {})
    sets = data.get("sets", {})
    lines = [f"{HEADING}\n"]
    questions = sets.get("questions")
    reranker = data.get("reranker", {})
    lines.append(
        "ragkit's query-pipeline recipes against LangChain's and LlamaIndex's equivalents, with the same "
        "packaged all-MiniLM-L6-v2 embedder and the same cross-encoder, on squad-dev split in halves: the 48 "
        f"articles sorted by file name, the first {len(sets.get('tune_articles', []))} are the *tune* half (the "
        "cross-encoder was trained on their questions; settings were chosen there), the last "
        f"{len(sets.get('report_articles', []))} the *report* half. Every system indexes the report half only "
        f"and answers the same {questions:,} questions about it (an even sample, `load_questions(..., "
        f"limit={data.get('questions_requested')})`). answer-hit@k: a gold answer string is inside one of the top "
        f"{data.get('top_k', 5)} chunks. Latency: each question searched alone after a warm-up (query "
        "embedding, retrievers, fusion, reranking; no generation), p50 / p95 per question. Ingest: reading, "
        "splitting, embedding and indexing the report half.\n"
    )
    rows = []
    for key, label, _ in SYSTEMS:
        row = s.get(key)
        if not row:
            continue
        lat = row.get("latency", {})
        rows.append(
            [
                label,
                _n(row.get("hit@1")),
                _n(row.get("hit@5")),
                _ms(lat.get("p50_ms")),
                _ms(lat.get("p95_ms")),
                _n(row.get("ingest_s"), 1),
                str(_chunks(data, key) or "–"),
            ]
        )
    lines.append(table(["system", "hit@1", "hit@5", "p50 ms", "p95 ms", "ingest s", "chunks"], rows) + "\n")

    comparisons = data.get("comparisons") or []
    if comparisons:
        lines.append("ragkit against the alternative a user would pick (quality: ragkit minus the other; speed-up: "
                     "the other's p50 / ragkit's):\n")  # fmt: skip
        lines.append(
            table(
                ["ragkit", "vs", "hit@1 delta", "hit@5 delta", "p50 speed-up"],
                [
                    [
                        LABELS.get(c["ragkit"], c["ragkit"]),
                        LABELS.get(c["other"], c["other"]),
                        f"{c['hit@1_delta']:+.3f}",
                        f"{c['hit@5_delta']:+.3f}",
                        "–" if c.get("p50_speedup") is None else f"{c['p50_speedup']:.2f}x",
                    ]
                    for c in comparisons
                ],
            )
            + "\n"
        )
    targets = data.get("targets") or []
    if targets:
        lines.append(
            table(
                ["target", "measured", "met"],
                [[t["target"], t["measured"], "yes" if t["met"] else "**no**"] for t in targets],
            )
            + "\n"
        )
    if questions is not None and questions < 1000:
        half_width = 1.96 * (0.25 / questions) ** 0.5
        lines.append(
            f"**Only {questions} questions** (the issue asks for 1,000): the run had to fit a shared 2-core machine "
            f"where a cross-encoder reads about 2 (question, chunk) pairs a second. On {questions} questions a hit "
            f"rate's 95% interval is up to ±{half_width:.2f}, so differences under that are not findings.\n"
        )
    missing = data.get("not_measured") or {}
    if missing:
        lines.append("Not measured: " + "; ".join(f"{LABELS.get(k, k)} ({why})" for k, why in missing.items()) + ".\n")
    drive = drivers(data)
    if drive:
        lines.append(f"**What drove the result.** {drive}\n")

    machine = data.get("machine", {})
    before, after = data.get("busy_share_before"), data.get("busy_share_after")
    load = data.get("load_average_end") or []
    parallel = data.get("parallel")
    lines.append(
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, no GPU used (every model on the "
        f"CPU). **Load:** the cores were shared with other work: {_pct(before)} of the CPU busy just before the run, "
        f"{_pct(after)} just after, load average {', '.join(f'{v:.1f}' for v in load[:3])} at the end"
        + (
            "; the steps ran at the same time (`--parallel`), each framework in its own process, so they also "
            "shared the cores with each other"
            if parallel
            else "; the steps ran one after another"
        )
        + ". Latencies are therefore pessimistic, by a factor that varies during the run; compare the "
        "systems' quality exactly and their latency as an order of magnitude.\n"
    )
    setups = [f"- {LABELS[k]}: {s[k]['setup']}" for k in LABELS if s.get(k, {}).get("setup")]
    ragkit_setups = [
        f"- {LABELS[k]}: `{s[k].get('recipe')}`, stages `{json.dumps(s[k].get('stages'))}`"
        for k in LABELS
        if k.startswith("ragkit_") and k in s
    ]
    lines.append("How each system is built:\n")
    lines.append("\n".join(ragkit_setups + setups) + "\n")
    training = reranker.get("keys")
    lines.append(
        f"The cross-encoder: `{reranker.get('folder')}`, trained with `evaluation/benchmarks/rerank_train_bench.py` "
        "(the packaged MiniLM encoder with a 1-label head, fine-tuned on hard negatives from the tune half's "
        "dense + BM25 candidates)"
        + (f"; {reranker['note']}" if reranker.get("note") else "")
        + (f"; its training report (`ragkit-rerank.json`) keys: {', '.join(training)}" if training else "")
        + ". Every system loads the same folder: ragkit's `cross-encoder` stage (`model:` overridden), "
        "LangChain's `HuggingFaceCrossEncoder` and LlamaIndex's `SentenceTransformerRerank`.\n"
    )
    check = reranker.get("retrain_check")
    if check:
        before, after = check.get("held_out_before", {}), check.get("held_out_after", {})
        report_before, report_after = check.get("report_half_before", {}), check.get("report_half_after", {})
        lines.append(
            f"Whether the training budget is the cause: a second model trained the same way for this run "
            f"(`{check.get('command')}`: {check.get('steps')} steps, {check.get('pairs'):,} pairs, final loss "
            f"{check.get('final_loss')}) also ranks worse than retrieval: on its held-out tune-half questions "
            f"hit@1 {before.get('hit_at_1')} → {after.get('hit_at_1')}, on {report_before.get('questions')} "
            f"report-half questions hit@1 {report_before.get('hit_at_1')} → {report_after.get('hit_at_1')}, hit@5 "
            f"{report_before.get('hit_at_5')} → {report_after.get('hit_at_5')}. A cross-encoder needs far more steps "
            "(docs/rerankers.md, *What to expect*) than a busy 2-core machine gives in minutes; the reranked rows "
            "measure the pipelines' mechanics and cost, not what a trained reranker is worth.\n"
        )
    versions = data.get("versions", {})
    if versions:
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".\n")
    lines.append(
        "Reproduce (the default 1,000 questions take hours on 2 CPU cores, nearly all of it the cross-encoders "
        "reading about 20 pairs per question; `--questions N` shortens it, `--quick` is a 3 + 3 article smoke run, "
        "and `run_all.py --only pipelines` runs the defaults and merges them into `bench-out/results.json`):\n"
    )
    lines.append(
        "```bash\n"
        "HF_HUB_OFFLINE=1 .venv/bin/python evaluation/benchmarks/rerank_train_bench.py --max-minutes 8\n"
        f"{data.get('command', 'python evaluation/benchmarks/pipelines_bench.py')}\n"
        "```\n"
    )
    return "\n".join(lines)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value:.0%}"


def splice(page: str, rendered: str) -> str:
    """``page`` with its "Query pipelines" section replaced by ``rendered`` (or inserted before Commands)."""
    start = page.find(f"\n{HEADING}\n")
    if start != -1:
        end = page.find("\n## ", start + len(HEADING) + 2)
        end = len(page) if end == -1 else end
        return page[: start + 1] + rendered + page[end:]
    commands = page.find("\n## Commands\n")
    if commands == -1:
        return page.rstrip("\n") + "\n\n" + rendered
    return page[: commands + 1] + rendered + page[commands:]


def main(argv: list[str] | None = None) -> int:
    """Print the section, or splice it into ``--page``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="pipelines_bench.py's output")
    parser.add_argument("--page", type=Path, help="the Markdown page to splice the section into")
    args = parser.parse_args(argv)
    rendered = section(json.loads(args.json.read_text(encoding="utf-8")))
    if args.page is None:
        print(rendered)
        return 0
    args.page.write_text(splice(args.page.read_text(encoding="utf-8"), rendered), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
