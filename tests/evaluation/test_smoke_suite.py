"""The shipped smoke suite end to end: real ingest, real embedder, real local generator; reports and compare."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ragkit import registry
from ragkit.cli import app
from ragkit.evaluation import run_suite
from ragkit.evaluation.metrics import BaseMetric
from ragkit.evaluation.sample import MetricResult

from .helpers import chromium_binary, dump_dom, needs_chromium

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "evaluation" / "suites" / "smoke.yaml"
QUESTIONS = 10


def strict_json(path: Path) -> dict:
    def no_constants(name: str) -> None:
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The retrieval-only pipelines of the smoke suite, run through ``ragkit eval SUITE`` (no 'run')."""
    root = tmp_path_factory.mktemp("eval-out")
    result = invoke("eval", str(SMOKE), "--pipelines", "dense,lexical", "--out", str(root / "retrieval"), "--json")
    assert result.exit_code == 0, result.output
    return root, json.loads(result.output)


def test_retrieval_only_run_writes_three_reports(runs):
    root, summary = runs
    assert summary["questions"] == {"total": QUESTIONS, "evaluated": QUESTIONS}
    assert sorted(Path(p).name for p in summary["reports"].values()) == ["report.html", "report.json", "report.md"]
    report = strict_json(root / "retrieval" / "report.json")
    assert [p["name"] for p in report["pipelines"]] == ["dense", "lexical"]
    assert len(report["samples"]) == 2 * QUESTIONS
    assert report["collection"]["ingest"]["added"] == 3
    for pipeline in report["pipelines"]:
        metrics = pipeline["aggregates"]["metrics"]
        assert "f1" not in metrics and "exact_match" not in metrics  # answer metrics skip retrieval-only runs
        assert metrics["recall@5"]["scored"] == QUESTIONS and metrics["recall@5"]["failed"] == 0
        assert metrics["recall@5"]["mean"] >= 0.5 and 0 < metrics["mrr"]["mean"] <= 1
        by_k = pipeline["aggregates"]["by_k"]["recall"]
        assert by_k["1"] <= by_k["3"] <= by_k["5"]
    for sample in report["samples"]:
        assert all(h["chunk_id"] in report["chunks"] for h in sample["hits"])
        # dense always fills the top 5; BM25 returns only chunks sharing a term with the question
        assert len(sample["hits"]) == 5 if sample["pipeline"] == "dense" else 1 <= len(sample["hits"]) <= 5
    html = (root / "retrieval" / "report.html").read_text(encoding="utf-8")
    assert html.count('<tr class="sample"') == 2 * QUESTIONS
    assert "| dense | retrieval |" in (root / "retrieval" / "report.md").read_text(encoding="utf-8")


def test_a_second_run_reuses_the_ingested_collection(runs):
    root, _ = runs
    result = invoke("eval", "run", str(SMOKE), "--pipelines", "lexical", "--sample", "4", "--out", str(root / "again"))
    assert result.exit_code == 0, result.output
    assert "| lexical | retrieval |" in result.output and "wrote " in result.output
    report = strict_json(root / "again" / "report.json")
    assert report["collection"]["ingest"]["unchanged"] == 3 and report["collection"]["ingest"]["added"] == 0
    assert len(report["samples"]) == 4


def test_compare_prints_deltas_and_flips(runs):
    root, _ = runs
    result = invoke("eval", "compare", str(root / "retrieval" / "report.json"), str(root / "again" / "report.json"))
    assert result.exit_code == 0, result.output
    assert "pipeline 'dense' is only in the first report" in result.output
    assert "lexical:" in result.output and "recall@5" in result.output and "flipped" in result.output
    as_json = invoke(
        "eval", "compare", str(root / "retrieval" / "report.json"), str(root / "again" / "report.json"), "--json"
    )
    assert json.loads(as_json.output)["only_before"] == ["dense"]


def test_cli_errors_are_one_line(tmp_path):
    result = invoke("eval", "run", str(tmp_path / "nope.yaml"))
    assert (
        result.exit_code == 2 and result.output.strip() == f"error: suite file {tmp_path / 'nope.yaml'} does not exist"
    )
    result = invoke("eval", "run", str(SMOKE), "--pipelines", "bm25", "--out", str(tmp_path / "x"))
    assert (
        result.exit_code == 2
        and "no pipeline named 'bm25' in this suite (it has: dense, lexical, basic)" in result.output
    )
    result = invoke("eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert result.exit_code == 2 and "does not exist" in result.output


@needs_chromium
def test_html_report_opens_in_headless_chromium(runs, tmp_path):
    root, _ = runs
    page = root / "retrieval" / "report.html"
    dom = dump_dom(page, tmp_path)
    assert dom.count('<tr class="sample"') == 2 * QUESTIONS
    assert f'<span id="shown">{2 * QUESTIONS}</span>' in dom  # the inline script ran and counted the rows
    assert '<div class="hit' not in dom  # detail rows are built when opened
    report = strict_json(root / "retrieval" / "report.json")
    first = report["samples"][0]
    opened = dump_dom(page, tmp_path, "#row-0")  # a link to a question opens its detail row
    assert '<tr class="sample open" id="row-0"' in opened and opened.count('<div class="hit') == len(first["hits"])
    assert f"retrieved ({len(first['hits'])}):" in opened and "mrr " in opened
    chunks = [report["chunks"][h["chunk_id"]] for h in first["hits"]]
    gold = sum(
        any(g["source"] == c["source"] and c["start"] < g["end"] and g["start"] < c["end"] for g in first["gold_spans"])
        for c in chunks
    )
    assert gold > 0 and opened.count('<div class="hit gold">') == gold
    assert html.escape(chunks[0]["text"][:60], quote=False) in opened  # the whole chunk text, escaped by the DOM


class FlakyForOneQuestion(BaseMetric):
    """Raises for one question, NaN for another: neither may cost the other samples."""

    needs = frozenset({"retrieval"})

    def score(self, sample):
        if sample.question.id == "5725c41eec44d21400f3d50b":
            raise RuntimeError("cannot score this one")
        if sample.question.id == "57264684708984140094c123":
            return MetricResult(float("nan"))
        return MetricResult(float(len(sample.hits)))


def test_runner_records_metric_failures_per_sample(runs, tmp_path):
    root, _ = runs
    registry.register("metric", "test_flaky_per_question")(FlakyForOneQuestion)
    data = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    data["metrics"] = ["mrr", "test_flaky_per_question"]
    data["documents"]["path"] = str(SMOKE.parent / data["documents"]["path"])
    data["questions"] = str(SMOKE.parent / data["questions"])
    suite_file = tmp_path / "flaky.yaml"
    suite_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = run_suite(suite_file, store_dir=root / ".eval-store", pipelines=["dense"])
    [dense] = result.pipelines
    values = {s.question.id: s.metrics["test_flaky_per_question"] for s in dense.samples}
    assert values["5725c41eec44d21400f3d50b"].value is None
    assert values["5725c41eec44d21400f3d50b"].error == "RuntimeError: cannot score this one"
    assert (
        values["57264684708984140094c123"].value is None and "not a number" in values["57264684708984140094c123"].error
    )
    assert sum(v.value == 5.0 for v in values.values()) == QUESTIONS - 2
    assert all(s.metrics["mrr"].value is not None for s in dense.samples)
    assert dense.aggregates()["metrics"]["test_flaky_per_question"] == {"mean": 5.0, "scored": 8, "failed": 2}
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.slow
def test_full_smoke_suite_with_the_local_generator(runs, tmp_path):
    root, _ = runs
    out = root / "full"
    result = invoke("eval", "run", str(SMOKE), "--out", str(out))
    assert result.exit_code == 0, result.output
    report = strict_json(out / "report.json")
    assert len(report["samples"]) == 3 * QUESTIONS
    basic = next(p for p in report["pipelines"] if p["name"] == "basic")
    assert basic["kind"] == "rag" and basic["aggregates"]["errors"] == 0
    assert basic["aggregates"]["metrics"]["f1"]["scored"] == QUESTIONS
    assert basic["aggregates"]["tokens"]["completion_tokens"] <= 32
    assert basic["aggregates"]["latency_s"]["p50"] > 0
    rag = [s for s in report["samples"] if s["pipeline"] == "basic"]
    assert all(isinstance(s["answer"], str) and s["usage"] for s in rag)
    # issue 14 item 21: answers cut at 12 tokens stopped mid-word, so exact match and answer_contains were 0 for
    # every question; asked for a short answer with room to finish it, some answers hold their gold answer
    matched = [s for s in rag if s["metrics"]["exact_match"] or s["metrics"]["answer_contains"]]
    assert matched, [s["answer"] for s in rag]
    assert basic["aggregates"]["metrics"]["answer_contains"]["mean"] > 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('<tr class="sample"') == 3 * QUESTIONS and "Tokens per question" in html
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| basic | rag |" in md and "### recall" in md
    if chromium_binary() is not None:
        dom = dump_dom(out / "report.html", tmp_path)
        assert dom.count('<tr class="sample"') == 3 * QUESTIONS
