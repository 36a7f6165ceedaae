"""A suite end to end with ragas metrics judged by the real local model, through ``ragkit eval run``.

The smoke suite's documents and questions (three of them), the basic pipeline
with short answers from the packaged SmolLM2, and two LLM-judged ragas
metrics plus the non-LLM ones, with SmolLM2 as the judge. The small judge
fails many judgements: the point is that every sample ends scored or failed
with a reason (never NaN), that the run and its reports complete, and that a
second run finds every judge call in the suite's judge cache and gives the
same values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from ragkit.cli import app

ROOT = Path(__file__).resolve().parents[3]
JUDGED = ("faithfulness", "context_recall")


def _suite(folder: Path) -> Path:
    suite = {
        "name": "ragas-smoke",
        "documents": {"path": str(ROOT / "evaluation" / "datasets" / "sample-docs"), "loader": {"include": ["*.md"]}},
        "questions": str(ROOT / "evaluation" / "suites" / "smoke-questions.jsonl"),
        "pipelines": [
            {
                "name": "basic",
                "recipe": "basic",
                "config": {"context": {"max_tokens": 300}, "answer": {"max_tokens": 16, "temperature": 0.0}},
            }
        ],
        "metrics": [
            "answer_hit",
            "f1",
            "rouge",
            "non_llm_context_recall",
            *({"name": name, "max_tokens": 64, "retries": 0} for name in JUDGED),
        ],
        "k": [3],
        "sample": 3,
        "judge": {"type": "transformers"},
    }
    path = folder / "ragas-smoke.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def _run(suite: Path, out: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        app, ["eval", "run", str(suite), "--out", str(out), "--store-dir", str(out.parent / "store")]
    )
    assert result.exit_code == 0, result.output
    text = (out / "report.json").read_text(encoding="utf-8")
    return json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(AssertionError(f"{name} in the report")))


def test_smoke_suite_with_ragas_metrics_and_the_local_judge(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    first = _run(suite, tmp_path / "first")
    samples = first["samples"]
    assert len(samples) == 3 and all(s["error"] is None for s in samples)
    for sample in samples:
        for name in ("answer_hit@3", "f1", "rouge", "non_llm_context_recall", *JUDGED):
            value = sample["metrics"][name]
            if value is None:  # failed: it must say why
                assert sample["metric_errors"][name].strip(), (name, sample)
            else:
                assert not math.isnan(value) and 0.0 <= value <= 1.0
    aggregates = first["pipelines"][0]["aggregates"]["metrics"]
    for name in JUDGED:
        assert aggregates[name]["scored"] + aggregates[name]["failed"] == 3
    assert sum(s["metric_details"][name]["judge_calls"] for s in samples for name in JUDGED) > 0
    assert (tmp_path / "store" / "judge-cache").is_dir()  # the suite's default judge cache

    second = _run(suite, tmp_path / "second")
    for before, after in zip(samples, second["samples"], strict=True):
        assert after["answer"] == before["answer"]
        for name in JUDGED:
            assert after["metric_details"][name]["judge_calls"] == 0  # all from the cache
            assert after["metrics"][name] == before["metrics"][name]
            assert after["metric_errors"].get(name) == before["metric_errors"].get(name)
