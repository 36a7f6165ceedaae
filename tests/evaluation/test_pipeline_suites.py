"""Suites evaluate recipes' stages: a hybrid recipe retrieval-only, inline stage lists, per-stage timings in reports."""

from __future__ import annotations

from pathlib import Path

import yaml

from ragkit.evaluation import run_suite
from ragkit.evaluation.report import render_markdown

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "evaluation" / "suites" / "smoke.yaml"


def test_a_suite_runs_recipe_stages_and_reports_their_time(tmp_path):
    data = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    data["documents"]["path"] = str(SMOKE.parent / data["documents"]["path"])
    data["questions"] = str(SMOKE.parent / data["questions"])
    data["pipelines"] = [
        {"name": "dense", "retrieval_only": True, "mode": "dense"},
        {"name": "hybrid", "recipe": "hybrid", "retrieval_only": True},
        {"name": "fused", "retrieval_only": True, "config": {"stages": ["dense", "lexical", "rrf"]}},
        {"name": "hybrid-lexical", "recipe": "hybrid", "retrieval_only": True, "mode": "lexical"},
    ]
    data["metrics"] = ["answer_hit", "mrr"]
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(data), encoding="utf-8")

    result = run_suite(suite, store_dir=tmp_path / "store")
    report = result.to_dict()
    by_name = {p["name"]: p for p in report["pipelines"]}
    assert by_name["hybrid"]["kind"] == "retrieval" and by_name["hybrid"]["recipe"] == "hybrid"
    assert list(by_name["hybrid"]["aggregates"]["stages_s"]) == ["dense", "lexical", "dbsf"]
    assert list(by_name["fused"]["aggregates"]["stages_s"]) == ["dense", "lexical", "rrf"]
    assert list(by_name["hybrid-lexical"]["aggregates"]["stages_s"]) == ["lexical"]
    hybrid_hits = [s for s in report["samples"] if s["pipeline"] == "hybrid"]
    assert hybrid_hits and all(hit["origin"] == "fused" for s in hybrid_hits for hit in s["hits"])
    assert by_name["hybrid"]["aggregates"]["metrics"]["answer_hit@5"]["mean"] >= 0.8
    markdown = render_markdown(report)
    assert "## Time per stage" in markdown and "| hybrid | " in markdown.split("## Time per stage")[1]
