"""Evaluation runs and collection-limited keys (who sees, reads, starts, cancels and deletes a run), and
suites confined to what the operator allows (paths inside the ingest roots, only allowed server URLs).

A service of its own, with keys limited to the suite's eval collection, over the real sample documents.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ragkit.evaluation.suite import load_suite
from ragkit.service import ApiKey, ServiceSettings, build_pipelines, create_app
from ragkit.testing.fake_openai import FakeOpenAIServer
from tests.service.conftest import ROOT, SAMPLE, LiveServer, tiny_pipeline
from tests.service.test_evaluations import wait_for_evaluation

SMOKE_QUESTIONS = ROOT / "evaluation" / "suites" / "smoke-questions.jsonl"

KEYS = {
    "admin": ("k-admin-0123456789", ["admin"], None),
    "writer": ("k-writer-0123456789", ["write"], None),
    "reader": ("k-reader-0123456789", ["read"], None),
    "colA-reader": ("k-cola-reader-0123456789", ["read"], ["colA"]),
    "colA-writer": ("k-cola-writer-0123456789", ["write"], ["colA"]),
    "colA-admin": ("k-cola-admin-0123456789", ["admin"], ["colA"]),
    "eval-writer": ("k-eval-writer-0123456789", ["write"], "EVAL"),
    "eval-writer-2": ("k-eval-writer2-0123456789", ["write"], "EVAL"),
    "eval-reader": ("k-eval-reader-0123456789", ["read"], "EVAL+colA"),
}
"""Key name → (secret, scopes, collections); ``EVAL`` stands for the smoke suite's eval collection."""


def _suite(**overrides: Any) -> dict[str, Any]:
    suite: dict[str, Any] = {
        "name": "scoping-smoke",
        "documents": {"path": "../corpus", "loader": {"include": ["*.md", "*.txt"]}},
        "questions": "smoke-questions.jsonl",
        "pipelines": [{"name": "lexical", "retrieval_only": True, "mode": "lexical"}],
        "metrics": ["answer_hit", "recall"],
        "k": [1, 3],
    }
    suite.update(overrides)
    return suite


class Scoped:
    """The scoping service: its URL, folders, the eval collection of ``smoke.yaml`` and fakes."""

    def __init__(self, url: str, home: Path, roots: Path, eval_collection: str, own: FakeOpenAIServer) -> None:
        self.url = url
        self.home = home
        self.roots = roots
        self.eval_collection = eval_collection
        self.own = own
        """A FAKE OpenAI server that one of the service's own pipelines uses (so suites may use it too)."""

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {KEYS[key][0]}"}, timeout=180)


@pytest.fixture(scope="module")
def foreign() -> Iterator[FakeOpenAIServer]:
    """A FAKE OpenAI server nobody allowed: a suite naming it must be refused and it must get no request."""
    with FakeOpenAIServer(reply="foreign") as server:
        yield server


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scoped]:
    home = tmp_path_factory.mktemp("scoped-home")
    roots = tmp_path_factory.mktemp("scoped-root")
    shutil.copytree(SAMPLE, roots / "corpus")
    suites = roots / "suites"
    suites.mkdir()
    shutil.copy(SMOKE_QUESTIONS, suites / "smoke-questions.jsonl")
    (suites / "smoke.yaml").write_text(yaml.safe_dump(_suite()), encoding="utf-8")
    eval_collection = load_suite(suites / "smoke.yaml").collection_name()

    def collections(spec: Any) -> list[str] | None:
        if spec == "EVAL":
            return [eval_collection]
        if spec == "EVAL+colA":
            return [eval_collection, "colA"]
        return list(spec) if spec is not None else None

    with FakeOpenAIServer(reply="Santa Clara") as own:
        settings = ServiceSettings(
            store_dir=home,
            api_keys=[
                ApiKey.model_validate({"key": key, "name": name, "scopes": scopes, "collections": collections(spec)})
                for name, (key, scopes, spec) in KEYS.items()
            ],
            pipelines={"basic": tiny_pipeline(generator={"type": "openai", "model": "fake", "base_url": own.v1})},
            ingest_roots=[roots],
            allowed_endpoints=["http://models.internal:8000/v1"],
        )
        app = create_app(settings, pipelines=build_pipelines(settings))
        with LiveServer(app) as server:
            yield Scoped(server.url, home, roots, eval_collection, own)


@pytest.fixture(scope="module")
def admin_run(scoped: Scoped) -> dict[str, Any]:
    """A finished run of ``suites/smoke.yaml`` started by the unlimited admin key."""
    with scoped.client("admin") as admin:
        started = admin.post("/v1/evaluations", json={"suite": "suites/smoke.yaml"})
        assert started.status_code == 202, started.text
        done = wait_for_evaluation(admin, started.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    return done


# -- item 7: runs belong to the collections they read and to the key that started them -------------------


def test_a_key_limited_to_other_collections_neither_sees_nor_reads_nor_changes_a_run(
    scoped: Scoped, admin_run: dict[str, Any]
) -> None:
    run_id = admin_run["id"]
    for name in ("colA-reader", "colA-writer", "colA-admin"):
        with scoped.client(name) as limited:
            assert run_id not in [r["id"] for r in limited.get("/v1/evaluations").json()["evaluations"]], name
            for path in (f"/v1/evaluations/{run_id}", f"/v1/evaluations/{run_id}/report?format=json"):
                hidden = limited.get(path)
                assert hidden.status_code == 404, (name, path, hidden.text)
                assert hidden.json()["error"]["message"] == f"no evaluation {run_id!r}"  # as for an unknown run
    with scoped.client("colA-writer") as writer:
        assert writer.delete(f"/v1/evaluations/{run_id}").status_code == 404
        assert writer.post(f"/v1/evaluations/{run_id}/cancel").status_code == 404
        refused = writer.post("/v1/evaluations", json={"suite": "suites/smoke.yaml"})
        assert refused.status_code == 403, refused.text
        assert scoped.eval_collection in refused.json()["error"]["message"]
    with scoped.client("reader") as reader:  # no limit: sees and reads everything, as before
        assert reader.get(f"/v1/evaluations/{run_id}/report?format=json").status_code == 200
    with scoped.client("admin") as admin:
        assert admin.get(f"/v1/evaluations/{run_id}").status_code == 200  # still there


def test_an_inline_suite_needs_an_admin_key_without_a_collection_limit(scoped: Scoped) -> None:
    inline = _suite(documents={"path": "corpus", "loader": {"include": ["*.md", "*.txt"]}})
    inline["questions"] = "suites/smoke-questions.jsonl"
    with scoped.client("colA-admin") as limited_admin:
        refused = limited_admin.post("/v1/evaluations", json={"suite": inline})
        assert refused.status_code == 403, refused.text
        assert "'admin' scope with no collection limit" in refused.json()["error"]["message"]
        assert limited_admin.get("/v1/evaluations").json()["evaluations"] == []  # nothing was queued


def test_a_key_granted_the_eval_collection_runs_reads_and_deletes_only_its_own_runs(
    scoped: Scoped, admin_run: dict[str, Any]
) -> None:
    with scoped.client("eval-writer") as owner:
        started = owner.post("/v1/evaluations", json={"suite": "suites/smoke.yaml", "sample": 3})
        assert started.status_code == 202, started.text
        mine = wait_for_evaluation(owner, started.json()["id"])
        assert mine["status"] == "succeeded" and mine["requested_by"] == "eval-writer"
        record = json.loads((scoped.home / "evaluations" / mine["id"] / "evaluation.json").read_text("utf-8"))
        assert record["owner"] == "eval-writer" and record["collections"] == [scoped.eval_collection]

    with scoped.client("eval-reader") as reader:  # may read the eval collection: sees both runs and reports
        listed = [r["id"] for r in reader.get("/v1/evaluations").json()["evaluations"]]
        assert {mine["id"], admin_run["id"]} <= set(listed)
        report = reader.get(f"/v1/evaluations/{mine['id']}/report?format=json")
        assert report.status_code == 200 and report.json()["chunks"]
        assert reader.delete(f"/v1/evaluations/{mine['id']}").status_code == 403  # read scope only

    with scoped.client("eval-writer-2") as other_writer:  # same collections, not the owner
        refused = other_writer.delete(f"/v1/evaluations/{mine['id']}")
        assert refused.status_code == 403 and "belongs to API key 'eval-writer'" in refused.json()["error"]["message"]
    with scoped.client("writer") as writer:  # no collection limit, but neither owner nor admin
        assert writer.delete(f"/v1/evaluations/{admin_run['id']}").status_code == 403
    with scoped.client("eval-writer") as owner:
        assert owner.delete(f"/v1/evaluations/{admin_run['id']}").status_code == 403  # the admin's run
        assert owner.delete(f"/v1/evaluations/{mine['id']}").status_code == 204
        assert owner.get(f"/v1/evaluations/{mine['id']}").status_code == 404


def test_a_run_recorded_without_owner_or_collections_is_seen_only_by_unlimited_keys(
    scoped: Scoped, admin_run: dict[str, Any]
) -> None:
    old = scoped.home / "evaluations" / ("eval_" + "b" * 32)
    old.mkdir()
    record = json.loads((scoped.home / "evaluations" / admin_run["id"] / "evaluation.json").read_text("utf-8"))
    for key in ("owner", "collections"):
        record.pop(key)
    record["id"] = old.name
    record["requested_by"] = None
    (old / "evaluation.json").write_text(json.dumps(record), encoding="utf-8")
    shutil.copy(scoped.home / "evaluations" / admin_run["id"] / "report.json", old / "report.json")

    with scoped.client("eval-reader") as limited:
        assert old.name not in [r["id"] for r in limited.get("/v1/evaluations").json()["evaluations"]]
        assert limited.get(f"/v1/evaluations/{old.name}/report").status_code == 404
    with scoped.client("reader") as reader:
        assert old.name in [r["id"] for r in reader.get("/v1/evaluations").json()["evaluations"]]
        assert reader.get(f"/v1/evaluations/{old.name}/report").status_code == 200
    with scoped.client("writer") as writer:  # no owner recorded: only an unlimited admin deletes it
        assert writer.delete(f"/v1/evaluations/{old.name}").status_code == 403
    with scoped.client("admin") as admin:
        assert admin.delete(f"/v1/evaluations/{old.name}").status_code == 204


# -- item 8: a suite names only paths inside the roots and endpoints the operator allows ---------------------


def _refused(client: httpx.Client, body: dict[str, Any], says: str) -> None:
    before = client.get("/v1/evaluations").json()["evaluations"]
    refused = client.post("/v1/evaluations", json=body)
    assert refused.status_code == 403, refused.text
    assert says in refused.json()["error"]["message"], refused.text
    assert client.get("/v1/evaluations").json()["evaluations"] == before  # nothing was queued


def test_paths_a_suite_names_must_lie_inside_the_roots(scoped: Scoped, tmp_path: Path) -> None:
    inline = _suite(documents={"path": "corpus", "loader": {"include": ["*.md", "*.txt"]}})
    inline["questions"] = "suites/smoke-questions.jsonl"
    judge = {"type": "openai", "model": "fake", "base_url": scoped.own.v1}
    cache = tmp_path / "ragas-cache-outside"
    model = tmp_path / "embedder-outside"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    with scoped.client("admin") as admin:
        ragas = {"type": "faithfulness", "judge": judge, "cache_dir": str(cache)}
        _refused(admin, {"suite": {**inline, "metrics": ["answer_hit", ragas]}}, "metrics[1] (faithfulness).cache_dir")
        assert not cache.exists()
        embedder = {"type": "sentence-transformers", "model": str(model)}
        _refused(admin, {"suite": {**inline, "embedder": embedder}}, "embedder.model")
        _refused(
            admin,
            {"suite": {**inline, "documents": {"path": "corpus", "collection": {"embedder": embedder}}}},
            "documents.collection.embedder.model",
        )


def test_a_suite_file_may_call_only_allowed_endpoints(scoped: Scoped, foreign: FakeOpenAIServer) -> None:
    suites = scoped.roots / "suites"
    elsewhere = {"type": "openai", "model": "fake", "base_url": foreign.v1, "max_retries": 0}
    generated = [{"name": "rag", "config": {"retrieval": {"top_k": 2}, "generator": elsewhere}}]
    (suites / "foreign-generator.yaml").write_text(
        yaml.safe_dump(_suite(pipelines=generated, metrics=["answer_hit"])), encoding="utf-8"
    )
    (suites / "foreign-judge.yaml").write_text(
        yaml.safe_dump(_suite(judge=elsewhere, metrics=["answer_hit", "faithfulness"])), encoding="utf-8"
    )
    (suites / "foreign-recipe.yaml").write_text(
        yaml.safe_dump({"pipeline": {"generator": elsewhere}}), encoding="utf-8"
    )
    (suites / "by-recipe.yaml").write_text(
        yaml.safe_dump(_suite(pipelines=[{"name": "rag", "recipe": "foreign-recipe.yaml"}])), encoding="utf-8"
    )
    with scoped.client("eval-writer") as writer:
        _refused(writer, {"suite": "suites/foreign-generator.yaml"}, "pipelines[0].config.generator.base_url")
        _refused(writer, {"suite": "suites/foreign-judge.yaml"}, "judge.base_url")
        _refused(writer, {"suite": "suites/by-recipe.yaml"}, "pipeline.generator.base_url")
        message = writer.post("/v1/evaluations", json={"suite": "suites/foreign-judge.yaml"}).json()["error"]
        assert "allowed_endpoints" in message["message"]
    assert foreign.state.requests == []  # never called, not even to check the suite

    # the endpoint the service's own pipeline uses is allowed
    own = {**elsewhere, "base_url": scoped.own.v1}
    (suites / "own-generator.yaml").write_text(
        yaml.safe_dump(
            _suite(
                pipelines=[{"name": "rag", "config": {"retrieval": {"top_k": 2}, "generator": own}}],
                metrics=["answer_hit"],
            )
        ),
        encoding="utf-8",
    )
    with scoped.client("eval-writer") as writer:
        started = writer.post("/v1/evaluations", json={"suite": "suites/own-generator.yaml", "sample": 2})
        assert started.status_code == 202, started.text
        done = wait_for_evaluation(writer, started.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    assert scoped.own.state.requests  # the allowed server answered the questions


def test_allowed_endpoints_match_scheme_host_port_and_path_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragkit.service.paths import endpoint_allowed

    allowed = ["http://models.internal:8000/v1", "https://api.example.com"]
    assert endpoint_allowed("http://models.internal:8000/v1", allowed)
    assert endpoint_allowed("http://MODELS.internal:8000/v1/", allowed)
    assert endpoint_allowed("https://api.example.com:443/v2", allowed)
    assert not endpoint_allowed("http://models.internal:8001/v1", allowed)
    assert not endpoint_allowed("https://models.internal:8000/v1", allowed)
    assert not endpoint_allowed("http://models.internal:8000/v10", allowed)
    assert not endpoint_allowed("http://models.internal.evil.com:8000/v1", allowed)
    assert not endpoint_allowed("http://user@models.internal@evil.com:8000/v1", allowed)

    monkeypatch.setenv("RAGKIT_ALLOWED_ENDPOINTS", "http://vllm:8000/v1,https://tgi.internal")
    assert ServiceSettings().allowed_endpoints == ["http://vllm:8000/v1", "https://tgi.internal"]
    monkeypatch.delenv("RAGKIT_ALLOWED_ENDPOINTS")
    assert ServiceSettings().allowed_endpoints == []  # by default only what the service's own pipelines use
