"""DeepEval's metrics judged through the real ``openai`` generator against ``FakeDeepEvalJudgeServer``.

The server is a **fake** (``ragkit_deepeval.testing``): real HTTP on
127.0.0.1 speaking the OpenAI chat protocol, no model behind it. Its answers
follow the JSON Schema the connector appends to each DeepEval prompt, with
verdicts alternating "yes", "no" and G-Eval's score 7 of 10, so the values
below are what DeepEval's own scoring code makes of those verdicts.

deepeval lives in its own environment (.venv-deepeval, see the connector's
README); where it is not installed this module is skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import math
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("deepeval") is None:  # (not imported here: ragkit_deepeval quiets it first)
    pytest.skip("deepeval is not installed here: run these tests with .venv-deepeval", allow_module_level=True)

from ragkit_deepeval import FaithfulnessMetric, GEvalMetric
from ragkit_deepeval.testing import FakeDeepEvalJudgeServer

from ragkit.errors import ConfigError
from ragkit.registry import build

SAMPLES = [
    {
        "id": f"q{i}",
        "question": f"Where is landmark number {i}?",
        "answers": [f"Landmark {i} is in Paris."],
        "response": f"Landmark {i} stands in Paris, France.",
        "contexts": [f"Landmark {i} is a tower in Paris.", "Paris is the capital of France."],
    }
    for i in range(3)
]
GEVAL = {
    "criteria": "The answer names the same place as the expected answer.",
    "evaluation_params": ["input", "actual_output", "expected_output"],
    "geval_name": "same_place",
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDeepEvalJudgeServer]:
    with FakeDeepEvalJudgeServer() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeDeepEvalJudgeServer) -> FakeDeepEvalJudgeServer:
    server.fail_every = None
    server.delay = 0.0
    server.garbage = False
    server.array_items = 2
    server.wait_idle()
    server.reset()
    return server


@pytest.fixture(autouse=True)
def no_network_no_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Any connection beyond loopback fails the test; the working folder is an empty one."""
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access to {address!r}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work
    assert sorted(p.name for p in work.iterdir()) == []  # no .deepeval folder, no test-run files


def test_importing_deepeval_through_the_connector_writes_nothing_and_opts_out(tmp_path: Path) -> None:
    """In a fresh process and an empty folder: telemetry off, no .deepeval folder, no .env read."""
    (tmp_path / ".env").write_text("DEEPEVAL_TELEMETRY_OPT_OUT=NO\nRAGKIT_DEEPEVAL_DOTENV_READ=yes\n", encoding="utf-8")
    code = (
        "import os, ragkit_deepeval._library as lib, deepeval.telemetry.client as c;"
        "print(c.telemetry_opt_out(), os.environ.get('RAGKIT_DEEPEVAL_DOTENV_READ'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEEPEVAL_", "CONFIDENT_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "None"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "cwd"]


def judge_config(server: FakeDeepEvalJudgeServer) -> dict[str, Any]:
    return {"type": "openai", "model": "fake-judge", "base_url": server.url, "max_retries": 0, "timeout": 10}


@pytest.mark.parametrize(
    ("name", "options", "expected", "needs"),
    [
        ("deepeval_answer_relevancy", {}, 0.5, {"answer", "judge"}),
        ("deepeval_faithfulness", {}, 0.5, {"retrieval", "answer", "judge"}),
        ("deepeval_contextual_precision", {}, 1.0, {"retrieval", "judge"}),
        ("deepeval_contextual_recall", {}, 0.5, {"retrieval", "judge"}),
        ("deepeval_hallucination", {}, 0.5, {"retrieval", "answer", "judge"}),
        ("deepeval_geval", GEVAL, 0.7, {"answer", "judge"}),
    ],
)
def test_each_metric_scores_from_the_judges_verdicts(fake, name, options, expected, needs) -> None:
    metric = build("metric", {"type": name, "judge": judge_config(fake), **options})
    assert set(metric.needs) == needs
    results = metric.score_many(SAMPLES)
    assert [r.value for r in results] == pytest.approx([expected] * len(SAMPLES))
    for result in results:
        assert result.error is None
        assert result.details["judge_calls"] >= 1
        assert result.details["reason"]  # DeepEval's explanation, from the judge
    assert fake.requests > 0


def test_the_prompt_carries_the_answer_schema_and_telemetry_is_off(fake) -> None:
    FaithfulnessMetric(judge=judge_config(fake)).score(SAMPLES[0])
    prompts = [b["messages"][-1]["content"] for b in fake.bodies]
    assert all("JSON Schema:" in p for p in prompts)
    assert any('"verdicts"' in p for p in prompts)
    assert os.environ["DEEPEVAL_TELEMETRY_OPT_OUT"] == "YES"
    assert os.environ["DEEPEVAL_DISABLE_DOTENV"] == "1"


def test_geval_writes_its_steps_once_and_uses_given_steps(fake) -> None:
    metric = build("metric", {"type": "deepeval_geval", "judge": judge_config(fake), **GEVAL})
    assert metric.name == "deepeval_geval_same_place"
    results = metric.score_many(SAMPLES)
    steps = [b for b in fake.bodies if '"title": "Steps"' in b["messages"][-1]["content"]]
    assert len(steps) == 1  # one judge call writes the steps, for every sample
    assert all(r.details["evaluation_steps"] == results[0].details["evaluation_steps"] for r in results)
    assert fake.requests == 1 + len(SAMPLES)

    fake.reset()
    given = GEvalMetric(
        evaluation_steps=["Check the place.", "Score 10 if it matches."],
        evaluation_params=["actual_output", "expected_output"],
        judge=judge_config(fake),
    )
    assert [r.value for r in given.score_many(SAMPLES[:2])] == pytest.approx([0.7, 0.7])
    assert fake.requests == 2


def test_unparsable_judgements_are_retried_then_fail_with_a_reason(fake) -> None:
    fake.garbage = True
    metric = FaithfulnessMetric(judge=judge_config(fake), retries=1, backoff=0.0, concurrency=1)
    results = metric.score_many(SAMPLES[:2])
    for result in results:
        assert result.value is None
        assert "no usable" in result.error and "after 2 attempts" in result.error
        assert result.details["failure"] == "unparsable"
        assert result.details["judge_retries"] >= 1


def test_failed_calls_are_retried_and_the_sample_still_scores(fake) -> None:
    fake.fail_every = 2  # one request at a time: every call's first retry succeeds
    options = {"judge": judge_config(fake), "backoff": 0.0, "concurrency": 1}
    metric = build("metric", {"type": "deepeval_contextual_recall", **options})
    results = metric.score_many(SAMPLES)
    assert [r.value for r in results] == pytest.approx([0.5] * len(SAMPLES))
    assert sum(r.details["judge_retries"] for r in results) >= 1
    assert fake.failed >= 1


def test_a_warm_cache_scores_again_without_the_judge(fake, tmp_path: Path) -> None:
    options = {"type": "deepeval_answer_relevancy", "judge": judge_config(fake), "cache_dir": str(tmp_path / "c")}
    first = build("metric", options).score_many(SAMPLES)
    fake.reset()
    second = build("metric", options).score_many(SAMPLES)
    assert fake.requests == 0
    assert [(r.value, r.details["reason"]) for r in second] == [(r.value, r.details["reason"]) for r in first]
    assert all(r.details["judge_calls"] == 0 and r.details["judge_cache_hits"] > 0 for r in second)


def test_a_sample_without_what_the_metric_reads_fails_with_a_reason(fake) -> None:
    metric = FaithfulnessMetric(judge=judge_config(fake))
    result = metric.score({"question": "Where?", "answers": ["Paris"], "contexts": ["Paris."]})
    assert result.value is None and "needs the sample's response" in result.error
    assert fake.requests == 0


def test_an_unreachable_judge_fails_every_sample_never_nan() -> None:
    judge = {"type": "openai", "model": "gone", "base_url": "http://127.0.0.1:9/v1", "max_retries": 0, "timeout": 2}
    results = FaithfulnessMetric(judge=judge, retries=0).score_many(SAMPLES[:2])
    for result in results:
        assert result.value is None and not (isinstance(result.value, float) and math.isnan(result.value))
        assert "the judge (gone) failed" in result.error


@pytest.mark.parametrize(
    "options",
    [
        {"evaluation_params": ["input"]},  # no criteria, no steps
        {"criteria": "ok?", "evaluation_params": ["question"]},  # not a test-case field
        {"criteria": "ok?", "geval_name": "two words"},
        {"criteria": "   "},
    ],
)
def test_a_bad_geval_config_is_refused_when_built(options) -> None:
    with pytest.raises(ConfigError, match="deepeval_geval"):
        build("metric", {"type": "deepeval_geval", **options})
