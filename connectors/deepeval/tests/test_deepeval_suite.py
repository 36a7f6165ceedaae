"""DeepEval metrics beside ragas' in one suite, through ``ragkit eval run``, in report.json and report.html.

The pipeline's generator and the judge are ``FakeDeepEvalJudgeServer`` (a
**fake** OpenAI server on loopback, no model): it answers questions with a
fixed sentence and judge prompts with schema-shaped verdicts, so the scores
are known. Retrieval is real (the packaged embedder over the sample docs).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("deepeval") is None:  # (not imported here: ragkit_deepeval quiets it first)
    pytest.skip("deepeval is not installed here: run these tests with .venv-deepeval", allow_module_level=True)

import yaml
from ragkit_deepeval.testing import PLAIN_ANSWER, FakeDeepEvalJudgeServer
from typer.testing import CliRunner

from ragkit.cli import app

ROOT = Path(__file__).resolve().parents[3]
NAMES = ("faithfulness", "deepeval_faithfulness", "deepeval_answer_relevancy", "deepeval_geval_grounded")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDeepEvalJudgeServer]:
    with FakeDeepEvalJudgeServer() as server:
        yield server


def _suite(folder: Path, url: str) -> Path:
    model = {"type": "openai", "model": "fake-judge", "base_url": url, "max_retries": 0, "timeout": 10}
    suite: dict[str, Any] = {
        "name": "deepeval-beside-ragas",
        "documents": {"path": str(ROOT / "evaluation" / "datasets" / "sample-docs"), "loader": {"include": ["*.md"]}},
        "questions": str(ROOT / "evaluation" / "suites" / "smoke-questions.jsonl"),
        "pipelines": [
            {"name": "basic", "recipe": "basic", "config": {"generator": model, "answer": {"max_tokens": 32}}}
        ],
        "metrics": [
            "f1",
            {"name": "faithfulness", "retries": 0},
            "deepeval_faithfulness",
            {"name": "deepeval_answer_relevancy", "include_reason": False},
            {
                "name": "deepeval_geval",
                "geval_name": "grounded",
                "criteria": "The answer only says what the retrieved context supports.",
                "evaluation_params": ["actual_output", "retrieval_context"],
            },
        ],
        "k": [3],
        "sample": 2,
        "judge": model,
    }
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def test_deepeval_and_ragas_metrics_in_one_report(fake: FakeDeepEvalJudgeServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["eval", "run", str(_suite(tmp_path, fake.url)), "--out", str(out), "--store-dir", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(
        (out / "report.json").read_text(encoding="utf-8"),
        parse_constant=lambda name: (_ for _ in ()).throw(AssertionError(f"{name} in the report")),
    )
    samples = report["samples"]
    assert len(samples) == 2
    for sample in samples:
        assert sample["answer"].startswith(PLAIN_ANSWER.split(" [")[0])
        assert sample["metrics"]["faithfulness"] == pytest.approx(0.5)  # ragas, from the same judge
        assert sample["metrics"]["deepeval_faithfulness"] == pytest.approx(0.5)
        assert sample["metrics"]["deepeval_answer_relevancy"] == pytest.approx(0.5)
        assert sample["metrics"]["deepeval_geval_grounded"] == pytest.approx(0.7)
        assert sample["metric_details"]["deepeval_faithfulness"]["reason"]
    aggregates = report["pipelines"][0]["aggregates"]["metrics"]
    for name in NAMES:
        assert aggregates[name]["scored"] == 2 and aggregates[name]["failed"] == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    for name in NAMES:
        assert name in html
    assert (tmp_path / "s" / "judge-cache").is_dir()  # the suite's judge cache, shared with ragas
