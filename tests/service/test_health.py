"""Liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from ragkit.service import ServiceSettings, create_app
from tests.service.conftest import QUESTION, LiveServer, Service, tiny_pipeline, wait_for_job


def test_healthz_and_readyz(service: Service) -> None:
    with service.client(None) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        checks = ready.json()["checks"]
        assert ready.json()["status"] == "ready" and checks["store"] == "ok"
        assert {"pipeline:basic", "pipeline:fail", "pipeline:spy"} <= set(checks)


def test_readyz_is_503_when_the_store_is_not_writable_or_a_pipeline_cannot_load(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store folder should be")
    settings = ServiceSettings(
        store_dir=blocker,
        pipelines={"basic": tiny_pipeline(), "ghost": tiny_pipeline(generator={"type": "no-such-generator"})},
    )
    with LiveServer(create_app(settings)) as server:
        response = httpx.get(f"{server.url}/readyz")
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert "not writable" in body["checks"]["store"]
    assert body["checks"]["pipeline:basic"] == "ok"
    assert "no generator named 'no-such-generator'" in body["checks"]["pipeline:ghost"]


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_stages_and_jobs(admin: httpx.Client) -> None:
    admin.get("/v1/collections/nope")
    assert admin.post("/v1/collections/docs/ask", json={"question": QUESTION}).status_code == 200
    text = admin.get("/metrics").text
    assert admin.get("/metrics").headers["content-type"].startswith("text/plain")
    assert _sample(text, "ragkit_http_requests_total", route="/v1/collections/{name}", method="GET", status="404") >= 1
    assert _sample(text, "ragkit_http_requests_total", route="/v1/collections/{name}/ask", status="200") >= 1
    assert _sample(text, "ragkit_http_request_duration_seconds_count", route="/v1/collections/{name}/ask") >= 1
    for stage in ("retrieve", "assemble", "generate", "total"):
        assert _sample(text, "ragkit_pipeline_stage_seconds_count", pipeline="basic", stage=stage) >= 1, stage
    assert _sample(text, "ragkit_generated_tokens_total", pipeline="basic", kind="completion") >= 1
    assert "# TYPE ragkit_ingest_jobs_total counter" in text
    job = admin.post("/v1/collections/other/documents", files=[("files", ("m.md", b"# M\n\nMetrics.\n"))])
    wait_for_job(admin, job.json()["id"])
    after = admin.get("/metrics").text
    assert _sample(after, "ragkit_ingest_jobs_total", status="succeeded") >= 1
    assert _sample(after, "ragkit_ingest_files_total", outcome="added") >= 1
    assert admin.delete("/v1/collections/other/documents/m.md").status_code == 204


def test_two_apps_in_one_process_have_separate_metrics(tmp_path: Path) -> None:
    first = create_app(ServiceSettings(store_dir=tmp_path / "a", pipelines={"basic": tiny_pipeline()}))
    second = create_app(ServiceSettings(store_dir=tmp_path / "b", pipelines={"basic": tiny_pipeline()}))
    with LiveServer(first) as one, LiveServer(second) as two:
        for _ in range(3):
            httpx.get(f"{one.url}/healthz")
        text_two = httpx.get(f"{two.url}/metrics").text
    assert _sample(text_two, "ragkit_http_requests_total", route="/healthz") == 0
