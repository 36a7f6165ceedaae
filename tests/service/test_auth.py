"""API keys: missing and wrong keys, scopes, collection limits, open routes, and no key in the logs."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from tests.service.conftest import ADMIN_KEY, OTHER_KEY, READER_KEY, WRITER_KEY, Service


def test_missing_and_wrong_keys_are_401(service: Service) -> None:
    with service.client(None) as anonymous:
        missing = anonymous.get("/v1/collections")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["type"] == "Unauthorized"
        assert "missing API key" in missing.json()["error"]["message"]
        basic = anonymous.get("/v1/collections", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401
    with service.client("not-a-key") as wrong:
        response = wrong.post("/v1/collections/docs/search", json={"query": "x"})
        assert response.status_code == 401 and response.json()["error"]["message"] == "unknown API key"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_key_in_either_header(service: Service) -> None:
    with service.client(None) as client:
        assert client.get("/v1/collections", headers={"X-API-Key": READER_KEY}).status_code == 200
        assert client.get("/v1/collections", headers={"Authorization": f"Bearer {READER_KEY}"}).status_code == 200


def test_scopes_nest_admin_write_read(service: Service) -> None:
    with service.client(READER_KEY) as reader, service.client(WRITER_KEY) as writer:
        assert reader.get("/v1/collections/docs").status_code == 200
        assert reader.post("/v1/collections/docs/search", json={"query": "plague"}).status_code == 200
        upload = reader.post("/v1/collections/docs/documents", files=[("files", ("a.md", b"a"))])
        assert upload.status_code == 403
        assert "lacks the 'write' scope" in upload.json()["error"]["message"]
        assert reader.delete("/v1/collections/docs/documents/x").status_code == 403
        assert reader.post("/v1/collections/docs/ingest", json={"path": "corpus"}).status_code == 403

        create = writer.post("/v1/collections", json={"name": "by-writer"})
        assert create.status_code == 403 and "lacks the 'admin' scope" in create.json()["error"]["message"]
        assert writer.delete("/v1/collections/docs").status_code == 403
        assert writer.get("/v1/collections/docs/documents").status_code == 200, "write implies read"
    assert "by-writer" not in service.client(ADMIN_KEY).get("/v1/collections").json()["collections"]


def test_key_limited_to_a_collection(service: Service) -> None:
    with service.client(OTHER_KEY) as limited:
        assert limited.get("/v1/collections").json()["collections"] == ["other"]
        assert limited.get("/v1/collections/other").status_code == 200
        refused = limited.post("/v1/collections/docs/search", json={"query": "plague"})
        assert refused.status_code == 404  # issue 14 item 9: the same answer as for a missing collection
        message = refused.json()["error"]["message"]
        assert "no collection 'docs' that API key 'other-only' may access (allowed: other)" in message
        assert limited.get("/v1/collections/docs/documents").status_code == 404
        models = limited.get("/v1/models").json()["data"]
        assert models and {m["id"].split(":")[0] for m in models} == {"other"}
        chat = limited.post(
            "/v1/chat/completions", json={"model": "docs", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert chat.status_code == 404 and chat.json()["error"]["type"] == "not_found_error"


def test_health_and_metrics_need_no_key(service: Service) -> None:
    with service.client(None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        assert anonymous.get("/metrics").status_code == 200


def test_access_log_names_the_key_never_the_key_itself(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ragkit.service.access"), service.client(READER_KEY) as reader:
        response = reader.get("/v1/collections", headers={"X-Request-ID": "trace-me-123"})
    assert response.headers["x-request-id"] == "trace-me-123"
    records = [r for r in caplog.records if getattr(r, "fields", {}).get("request_id") == "trace-me-123"]
    assert len(records) == 1
    fields = records[0].fields  # type: ignore[attr-defined]
    assert fields["key"] == "reader" and fields["route"] == "/v1/collections" and fields["status"] == 200
    assert fields["method"] == "GET" and fields["duration_ms"] >= 0
    assert READER_KEY not in json.dumps(fields) and READER_KEY not in caplog.text


def test_cors_preflight_allows_the_configured_origin(service: Service) -> None:
    with httpx.Client(base_url=service.url) as client:
        headers = {
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        allowed = client.options("/v1/collections/docs/search", headers=headers)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        other = client.options("/v1/collections/docs/search", headers={**headers, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
