"""The evaluation part of the benchmark report (``eval_bench.py``'s steps).

Its targets (the suite's overhead, the warm judge cache, no NaN), its
plain-text summary lines and its Markdown section ("Evaluation"), rendered
from ``results["eval"]``.
"""

from __future__ import annotations

import json
from typing import Any

from formatting import Row, below, fx, get, mib, ms, num, pct, ratio, table

SYSTEMS = [
    ("ragkit", "ragkit (evaluate())"),
    ("langchain", "LangChain tutorial"),
    ("llamaindex", "LlamaIndex defaults"),
]


def targets(results: dict[str, Any]) -> list[Row]:
    """The evaluation step's targets."""
    evaluation = results.get("eval") or {}
    rows: list[Row] = []
    sizes = get(evaluation, "overhead", "sizes") or []
    worst = max((s["overhead_pct"] for s in sizes), default=None)
    rows.append(
        (
            "retrieval-only suite costs < 10 % more than its retrievals",
            "`evaluate()` (ingest check, retrieval, scoring, three reports) vs the bare `search_many` calls it "
            "makes, same questions, alternating, median",
            worst,
            ", ".join(f"{s['overhead_pct']:+.1f} % at {s['questions']:,} questions" for s in sizes) or "–",
            below(worst, 10),
        )
    )
    comparison = get(evaluation, "judge", "comparison") or {}
    judge_ratio = comparison.get("evaluate_ratio")
    identical = comparison.get("identical")
    again = get(evaluation, "judge", "warm_again") or {}
    cold_s = get(evaluation, "judge", "cold", "evaluate_s")
    again_ratio = ratio(cold_s, again.get("evaluate_s")) if again else None
    with_answers = get(evaluation, "judge_answers", "comparison") or {}
    answers_ratio = with_answers.get("evaluate_ratio")
    both_identical = bool(identical and with_answers.get("identical"))
    rows.append(
        (
            "warm judge cache: re-run >= 20x faster, identical scores",
            "LLM-judged suite run again in a fresh process with the caches of the first run: whole `evaluate()` "
            "time, and every sample's metric values and failure reasons; met with `answer_cache: true` (the RAG "
            "answers replayed too), the judge cache alone is the second figure",
            answers_ratio if answers_ratio is not None else judge_ratio,
            "–"
            if judge_ratio is None
            else (
                f"{fx(answers_ratio)} with the answer cache, "
                f"{'identical' if with_answers.get('identical') else 'NOT identical'}; "
                if answers_ratio is not None
                else ""
            )
            + f"judge cache alone {fx(judge_ratio)} in a fresh process, "
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
    runs += [judge.get("cold"), judge.get("warm"), get(evaluation, "judge_answers", "warm-answers")]
    for run in runs:
        for key in total:
            total[key] += int(get(run, "sanity", key, default=0) or 0)
    return total


def text(results: dict[str, Any]) -> list[str]:
    """The plain-text summary: the three systems' scores and cost, the overhead, the judge cache."""
    evaluation = results.get("eval")
    if not evaluation:
        return []
    lines = [
        "",
        f"evaluation ({get(evaluation, 'ragkit', 'sample', 'questions', default='?')} squad-dev questions, top 10)",
    ]
    lines.append(
        f"{'system':<22}{'hit@1':>8}{'hit@5':>8}{'rec@5':>8}{'mrr':>8}{'s/question':>12}{'total s':>9}{'peak RSS':>11}"
    )
    for key, label in SYSTEMS:
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
    check = get(evaluation, "ragkit", "self_check")
    if check:
        lines.append(
            f"converted-hit scoring of ragkit's own hits: {'identical' if check['identical'] else 'DIFFERENT'}"
            f" to the suite's report; same question ids: {_same_ids(evaluation)}"
        )
    for size in get(evaluation, "overhead", "sizes") or []:
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
    digests = {get(evaluation, key, "sample", "ids_sha256") for key, _ in SYSTEMS if evaluation.get(key)}
    return "–" if not digests else ("yes" if len(digests) == 1 else "**no**")


def section(results: dict[str, Any]) -> str:
    """The "Evaluation" section: three systems on one sample, the suite's overhead, the judge cache ("" without
    evaluation results)."""
    evaluation = results.get("eval")
    if not evaluation:
        return ""
    out = ["## Evaluation\n"]
    systems = [(key, label, evaluation.get(key)) for key, label in SYSTEMS]
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
        out.append(table(["", *(label for _, label, _ in systems)], rows) + "\n")
        check = get(evaluation, "ragkit", "self_check") or {}
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
        reader = get(evaluation, "llamaindex", "reader")
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
            table(
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
        return float(sum(get(run, "pipelines", pipeline, "seconds", key, default=0.0) for key in keys))

    def timed(label: str, values: list[float], bold: bool = False, digits: int = 1) -> list[str]:
        cells = [f"{v:.{digits}f} s" for v in values]
        ratios = [fx(ratio(values[0], v)) for v in values[1:]]
        if bold:
            ratios = [f"**{r}**" for r in ratios]
        row = [label, cells[0]]
        for cell, shown in zip(cells[1:], ratios, strict=True):
            row += [cell, shown]
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
    out.append(table(header, rows) + "\n")
    again = judge.get("warm_again")
    if again:
        out.append(
            "*Warm* run a third time in its own process (models loaded, as in `ragkit serve` or a notebook): "
            f"**{again['evaluate_s']:.1f} s, {fx(ratio(cold['evaluate_s'], again['evaluate_s']))} faster than cold**; "
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
    out.append(table(["metric (both pipelines)", "scored", "failed", "failure reasons"], rows) + "\n")
    return "\n".join(out)
