"""Evaluation runs through the service: start, follow, reports, the same numbers as in process, refusals,
cancelling, and runs read back after a restart."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ragkit.evaluation import run_suite
from ragkit.service.evaluations import EvaluationManager
from tests.service.conftest import READER_KEY, ROOT, WRITER_KEY, Service

SMOKE_QUESTIONS = ROOT / "evaluation" / "suites" / "smoke-questions.jsonl"


def _suite(**overrides: Any) -> dict[str, Any]:
    """A retrieval-only suite over the service's corpus folder and the smoke questions (paths relative to suites/)."""
    suite: dict[str, Any] = {
        "name": "service-smoke",
        "documents": {"path": "../corpus", "loader": {"include": ["*.md", "*.txt"]}},
        "questions": "smoke-questions.jsonl",
        "pipelines": [
            {"name": "dense", "retrieval_only": True, "mode": "dense"},
            {"name": "lexical", "retrieval_only": True, "mode": "lexical"},
        ],
        "metrics": ["answer_hit", "recall", "mrr", "ndcg"],
        "k": [1, 3],
    }
    suite.update(overrides)
    return suite


@pytest.fixture(scope="module")
def suites(service: Service) -> Path:
    """``suites/`` inside the service's ingest root, with the smoke questions and a few suite files."""
    folder = service.roots / "suites"
    folder.mkdir(exist_ok=True)
    shutil.copy(SMOKE_QUESTIONS, folder / "smoke-questions.jsonl")
    (folder / "smoke.yaml").write_text(yaml.safe_dump(_suite()), encoding="utf-8")
    (folder / "escapes.yaml").write_text(
        yaml.safe_dump(_suite(documents={"path": str(ROOT / "evaluation" / "datasets" / "sample-docs")})),
        encoding="utf-8",
    )
    (folder / "bad-metric.yaml").write_text(yaml.safe_dump(_suite(metrics=["answer_hit", "bogus"])), encoding="utf-8")
    slow = _suite(
        name="service-slow",
        pipelines=[
            {
                "name": "slow",
                "config": {
                    "retrieval": {"top_k": 2},
                    "generator": service.fake.generator("slow"),  # every answer times out after 1 s
                    "answer": {"max_tokens": 8},
                },
            }
        ],
        metrics=["answer_hit", "f1"],
    )
    (folder / "slow.yaml").write_text(yaml.safe_dump(slow), encoding="utf-8")
    return folder


def wait_for_evaluation(client: httpx.Client, run_id: str, timeout: float = 180, until: Any = None) -> dict[str, Any]:
    """Poll a run until it ends (or ``until(run)`` holds); returns its last state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/v1/evaluations/{run_id}")
        assert response.status_code == 200, response.text
        run = response.json()
        if (until is not None and until(run)) or run["status"] in ("succeeded", "failed", "cancelled"):
            return dict(run)
        time.sleep(0.1)
    raise AssertionError(f"evaluation {run_id} did not get there in {timeout} s: {run}")


def test_a_suite_file_runs_in_the_background_and_matches_the_in_process_run(
    service: Service, suites: Path, tmp_path: Path
) -> None:
    with service.client(WRITER_KEY) as writer:
        started = writer.post("/v1/evaluations", json={"suite": "suites/smoke.yaml"})
        assert started.status_code == 202, started.text
        run = started.json()
        assert started.headers["location"] == f"/v1/evaluations/{run['id']}"
        assert run["status"] in ("queued", "running") and run["requested_by"] == "writer"
        assert run["suite"] == str(suites / "smoke.yaml") and run["pipelines"] == ["dense", "lexical"]
        assert run["summary"] is None and run["reports"] == {}

        done = wait_for_evaluation(writer, run["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["stage"] == "succeeded" and done["finished_at"] >= done["started_at"]
    summary = done["summary"]
    assert summary["questions"] == {"total": 10, "evaluated": 10}
    assert [p["name"] for p in summary["pipelines"]] == ["dense", "lexical"]

    # the same suite run in this process (a fresh store) scores exactly the same
    local = run_suite(suites / "smoke.yaml", store_dir=tmp_path / "store")
    for remote, here in zip(summary["pipelines"], local.pipelines, strict=True):
        assert remote["aggregates"]["metrics"] == here.aggregates()["metrics"]
        assert remote["aggregates"]["metrics"]["answer_hit@3"]["mean"] > 0.5  # the smoke questions are easy

    with service.client(READER_KEY) as reader:  # reading needs only the read scope
        report = reader.get(done["reports"]["json"])
        assert report.status_code == 200 and report.headers["content-type"] == "application/json"
        full = report.json()
        assert len(full["samples"]) == 20 and full["suite"]["name"] == "service-smoke"
        assert {s["pipeline"] for s in full["samples"]} == {"dense", "lexical"}
        markdown = reader.get(done["reports"]["markdown"])
        assert markdown.headers["content-type"].startswith("text/markdown") and "| dense |" in markdown.text
        html = reader.get(done["reports"]["html"])
        assert html.headers["content-type"].startswith("text/html") and html.text.count('<tr class="sample"') == 20
        listed = reader.get("/v1/evaluations").json()["evaluations"]
        assert run["id"] in [r["id"] for r in listed]
        assert reader.post("/v1/evaluations", json={"suite": "suites/smoke.yaml"}).status_code == 403

    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'ragkit_evaluations_total{status="succeeded"}' in metrics


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"suite": "/etc/hostname"}, 403, "outside the ingest roots"),
        ({"suite": "suites/nope.yaml"}, 404, "does not exist"),
        ({"suite": "suites/escapes.yaml"}, 403, "documents.path"),
        ({"suite": "suites/bad-metric.yaml"}, 400, "bogus"),
        ({"suite": "suites/smoke.yaml", "pipelines": ["dense", "hybrid"]}, 400, "no pipeline named 'hybrid'"),
        ({"suite": "suites/smoke.yaml", "sample": 0}, 422, "sample"),
        (
            {"suite": "corpus/amazon-rainforest.md"},
            400,
            # libyaml's wording ("in this context") or PyYAML's ("here"): the problem and where, never the text
            r"is not valid YAML: mapping values are not allowed (here|in this context) at line 3, column \d+",
        ),
    ],
)
def test_bad_requests_are_refused_before_anything_runs(
    admin: httpx.Client, suites: Path, body: dict[str, Any], status: int, says: str
) -> None:
    before = len(admin.get("/v1/evaluations").json()["evaluations"])
    refused = admin.post("/v1/evaluations", json=body)
    assert refused.status_code == status, refused.text
    message = json.dumps(refused.json())
    assert re.search(says, message), message
    assert len(admin.get("/v1/evaluations").json()["evaluations"]) == before  # nothing was queued


def test_inline_suites_need_the_admin_scope_and_stay_inside_the_roots(
    admin: httpx.Client, service: Service, suites: Path
) -> None:
    inline = _suite(documents={"path": "corpus", "loader": {"include": ["*.md", "*.txt"]}})
    inline["questions"] = "suites/smoke-questions.jsonl"  # relative to the first ingest root
    with service.client(WRITER_KEY) as writer:
        refused = writer.post("/v1/evaluations", json={"suite": inline})
        assert refused.status_code == 403 and "'admin' scope" in refused.json()["error"]["message"]

    bad_k = admin.post("/v1/evaluations", json={"suite": {**inline, "k": [0]}})
    assert bad_k.status_code == 400 and "k" in bad_k.json()["error"]["message"]
    outside = admin.post("/v1/evaluations", json={"suite": {**inline, "questions": str(SMOKE_QUESTIONS)}})
    assert outside.status_code == 403 and "questions.path" in outside.json()["error"]["message"]

    started = admin.post("/v1/evaluations", json={"suite": inline, "sample": 4, "pipelines": ["lexical"]})
    assert started.status_code == 202, started.text
    done = wait_for_evaluation(admin, started.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["suite"] == "suite" and done["sample"] == 4
    assert done["summary"]["questions"]["evaluated"] == 4
    assert [p["name"] for p in done["summary"]["pipelines"]] == ["lexical"]


def test_cancel_a_queued_and_a_running_evaluation_then_delete(admin: httpx.Client, suites: Path) -> None:
    slow = admin.post("/v1/evaluations", json={"suite": "suites/slow.yaml"}).json()
    running = wait_for_evaluation(admin, slow["id"], until=lambda r: r["progress"]["stage"] == "slow")
    assert running["status"] == "running" and running["progress"]["total"] == 10
    queued = admin.post("/v1/evaluations", json={"suite": "suites/smoke.yaml"}).json()
    assert queued["status"] == "queued"  # one evaluation at a time

    assert admin.get(f"/v1/evaluations/{queued['id']}/report").status_code == 409  # no report yet
    assert admin.delete(f"/v1/evaluations/{slow['id']}").status_code == 409  # running: cancel first

    cancelled = admin.post(f"/v1/evaluations/{queued['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"]["message"] == "cancelled before it started"

    assert admin.post(f"/v1/evaluations/{slow['id']}/cancel").status_code == 200
    stopped = wait_for_evaluation(admin, slow["id"], timeout=30)
    assert stopped["status"] == "cancelled" and stopped["summary"] is None
    assert stopped["progress"]["done"] < 10  # it stopped part-way, not after every question
    assert admin.post(f"/v1/evaluations/{slow['id']}/cancel").status_code == 409  # already over

    assert admin.delete(f"/v1/evaluations/{slow['id']}").status_code == 204
    assert admin.get(f"/v1/evaluations/{slow['id']}").status_code == 404
    for unknown in ("eval_nope", "../../etc", "eval_" + "0" * 32):
        assert admin.get(f"/v1/evaluations/{unknown}").status_code == 404


def test_finished_runs_are_read_back_after_a_restart(admin: httpx.Client, service: Service, suites: Path) -> None:
    started = admin.post("/v1/evaluations", json={"suite": "suites/smoke.yaml", "pipelines": ["lexical"]}).json()
    done = wait_for_evaluation(admin, started["id"])
    assert done["status"] == "succeeded"

    folder = service.home / "evaluations"
    stale = folder / ("eval_" + "a" * 32)  # a run the service lost track of
    stale.mkdir()
    (stale / "evaluation.json").write_text(
        json.dumps({**done, "id": stale.name, "status": "running", "summary": None, "reports": {}}), encoding="utf-8"
    )

    restarted = EvaluationManager(folder)  # what a new service process sees
    again = restarted.get(done["id"])
    assert again.status == "succeeded" and again.summary == done["summary"]
    assert restarted.report_file(done["id"], "html").is_file()
    lost = restarted.get(stale.name)
    assert lost.status == "failed" and lost.error == {
        "type": "Interrupted",
        "message": "the service stopped before the evaluation finished",
    }
    assert {done["id"], stale.name} <= {r.id for r in restarted.runs()}
