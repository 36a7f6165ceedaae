"""Uploads, ingest jobs, ingest by path, document listing and deletion, and the size limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.service.conftest import (
    JSON_LIMIT,
    REQUEST_LIMIT,
    SAMPLE,
    UPLOAD_LIMIT,
    Service,
    new_collection,
    wait_for_job,
)

NOTE = b"# Lighthouses\n\nThe Eddystone lighthouse stands on rocks fourteen kilometres south of Plymouth.\n"


def _counts(client: httpx.Client, name: str) -> dict[str, int]:
    return dict(client.get(f"/v1/collections/{name}").json()["counts"])


def test_upload_runs_a_job_and_reupload_updates_in_place(admin: httpx.Client, service: Service) -> None:
    new_collection(admin, "uploads")
    files = [
        ("files", ("lighthouses.md", NOTE, "text/markdown")),
        ("files", ("plague.txt", (SAMPLE / "black-death.txt").read_bytes(), "text/plain")),
    ]
    response = admin.post("/v1/collections/uploads/documents", files=files)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("queued", "running") and job["sources"] == ["lighthouses.md", "plague.txt"]
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    done = wait_for_job(admin, job["id"])
    assert done["status"] == "succeeded", done
    assert done["counts"]["added"] == 2 and done["counts"]["failed"] == 0 and done["errors"] == []
    assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]
    counts = _counts(admin, "uploads")
    assert counts["sources"] == 2 and counts["chunks"] == done["counts"]["chunks_written"]
    stored = service.home / "documents" / "uploads" / "lighthouses.md"
    assert stored.read_bytes() == NOTE

    changed = NOTE + b"\nIts present tower was completed in 1882.\n"
    again = admin.post("/v1/collections/uploads/documents", files=[("files", ("lighthouses.md", changed))])
    redone = wait_for_job(admin, again.json()["id"])
    assert redone["counts"]["updated"] == 1 and redone["counts"]["added"] == 0
    assert _counts(admin, "uploads")["sources"] == 2, "re-uploading a name must not duplicate it"
    assert stored.read_bytes() == changed
    assert not any((service.home / "staging").iterdir()), "staged files are cleaned up"

    hits = admin.post("/v1/collections/uploads/search", json={"query": "When was the tower completed?", "top_k": 1})
    assert "1882" in hits.json()["hits"][0]["text"]


def test_documents_are_listed_and_deleted(admin: httpx.Client, service: Service) -> None:
    new_collection(admin, "listing")
    files = [("files", ("a.md", NOTE)), ("files", ("b.md", b"# Bees\n\nBees make honey from nectar.\n"))]
    wait_for_job(admin, admin.post("/v1/collections/listing/documents", files=files).json()["id"])
    listing = admin.get("/v1/collections/listing/documents")
    assert listing.status_code == 200
    documents = {d["name"]: d for d in listing.json()["documents"]}
    assert set(documents) == {"a.md", "b.md"}
    assert documents["a.md"]["uploaded"] is True and documents["a.md"]["size"] == len(NOTE)
    assert documents["a.md"]["chunks"] >= 1 and len(documents["a.md"]["content_hash"]) == 32

    assert admin.delete("/v1/collections/listing/documents/a.md").status_code == 204
    assert not (service.home / "documents" / "listing" / "a.md").exists()
    by_id = admin.delete(f"/v1/collections/listing/documents/{documents['b.md']['id']}")
    assert by_id.status_code == 204
    assert _counts(admin, "listing") == {"chunks": 0, "sources": 0}
    missing = admin.delete("/v1/collections/listing/documents/a.md")
    assert missing.status_code == 404 and "has no document 'a.md'" in missing.json()["error"]["message"]


def test_corrupt_pdf_and_lying_content_type_are_per_file_errors(admin: httpx.Client) -> None:
    new_collection(admin, "badfiles")
    files = [
        ("files", ("broken.pdf", b"%PDF-1.7\n this is not really a pdf \x00\x01\x02", "application/pdf")),
        ("files", ("fake.pdf", b"just some plain words, not a PDF at all", "application/pdf")),
        ("files", ("notes.md", NOTE, "application/pdf")),  # a markdown file that claims to be a PDF
        ("files", ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00", "text/plain")),
    ]
    response = admin.post("/v1/collections/badfiles/documents", files=files)
    assert response.status_code == 202, response.text
    job = wait_for_job(admin, response.json()["id"])
    assert job["status"] == "succeeded"
    failed = {Path(e["source"]).name: e["reason"] for e in job["errors"]}
    assert set(failed) == {"broken.pdf", "fake.pdf"}, job
    assert all(reason for reason in failed.values())
    assert [Path(s["source"]).name for s in job["skipped"]] == ["image.png"]
    assert job["counts"]["added"] == 1 and _counts(admin, "badfiles")["sources"] == 1


def test_bad_file_names_are_refused_by_name(admin: httpx.Client, service: Service) -> None:
    for name, expected in [
        ("../escape.md", "path separator"),
        ("..", "'..'"),
        ("a\\b.md", "path separator"),
        ("", "empty file name"),
        (".hidden.md", "hidden"),
    ]:
        response = admin.post("/v1/collections/docs/documents", files=[("files", (name, NOTE))])
        assert response.status_code == 400, (name, response.text)
        assert expected in response.json()["error"]["message"], (name, response.text)
    for raw_name, expected in [(b"a\x00b.md", "NUL"), (b"", "empty file name")]:
        body = (
            b'--b\r\nContent-Disposition: form-data; name="files"; filename="' + raw_name + b'"\r\n\r\nhi\r\n--b--\r\n'
        )
        response = admin.post(
            "/v1/collections/docs/documents", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert response.status_code == 400 and expected in response.json()["error"]["message"], response.text
    no_files = admin.post("/v1/collections/docs/documents", data={"other": "x"}, files=[("x", ("a.md", b"x"))])
    assert no_files.status_code == 400 and "no files" in no_files.json()["error"]["message"]
    not_multipart = admin.post("/v1/collections/docs/documents", json={"files": []})
    assert not_multipart.status_code == 415
    assert not (service.home / "documents" / "docs").exists()


def test_oversized_upload_is_413_and_changes_nothing(admin: httpx.Client, service: Service) -> None:
    new_collection(admin, "limits")
    before = _counts(admin, "limits")
    files = [("files", ("small.md", NOTE)), ("files", ("huge.md", b"word " * (UPLOAD_LIMIT // 5 + 10)))]
    response = admin.post("/v1/collections/limits/documents", files=files)
    assert response.status_code == 413
    assert "file 'huge.md' is larger than the 262,144-byte limit" in response.json()["error"]["message"]
    whole = admin.post("/v1/collections/limits/documents", files=[("files", ("x.md", b"x" * (REQUEST_LIMIT + 1)))])
    assert whole.status_code == 413 and "1,048,576-byte limit" in whole.json()["error"]["message"]
    assert _counts(admin, "limits") == before
    assert not (service.home / "documents" / "limits").exists()
    assert not any((service.home / "staging").iterdir())
    assert admin.get("/healthz").status_code == 200


def test_json_bodies_over_the_limit_are_413(admin: httpx.Client) -> None:
    big = b'{"query": "' + b"a" * JSON_LIMIT + b'"}'
    declared = admin.post("/v1/collections/docs/search", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["error"]["type"] == "PayloadTooLarge"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"query": "'
        for _ in range(JSON_LIMIT // 16_384 + 2):
            yield b"a" * 16_384
        yield b'"}'

    chunked = admin.post("/v1/collections/docs/search", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert "262,144-byte limit" in chunked.json()["error"]["message"]


def test_ingest_by_path_inside_and_outside_the_roots(admin: httpx.Client, service: Service) -> None:
    new_collection(admin, "bypath")
    inside = admin.post("/v1/collections/bypath/ingest", json={"path": str(service.corpus / "amazon-rainforest.md")})
    assert inside.status_code == 202, inside.text
    job = wait_for_job(admin, inside.json()["id"])
    assert job["status"] == "succeeded" and job["kind"] == "path" and job["counts"]["added"] == 1
    relative = admin.post("/v1/collections/bypath/ingest", json={"path": "corpus/amazon-rainforest.md"})
    assert wait_for_job(admin, relative.json()["id"])["counts"]["unchanged"] == 1
    listing = admin.get("/v1/collections/bypath/documents").json()["documents"]
    assert [d["uploaded"] for d in listing] == [False]

    for outside in ["/etc/passwd", str(service.roots / ".." / "elsewhere"), "corpus/../../etc"]:
        refused = admin.post("/v1/collections/bypath/ingest", json={"path": outside})
        assert refused.status_code == 403, outside
        assert "outside the ingest roots" in refused.json()["error"]["message"]
    missing = admin.post("/v1/collections/bypath/ingest", json={"path": str(service.corpus / "nope.md")})
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]["message"]


def test_unknown_job_and_collection(admin: httpx.Client) -> None:
    assert admin.get("/v1/jobs/job_nope").status_code == 404
    upload = admin.post("/v1/collections/nope/documents", files=[("files", ("a.md", NOTE))])
    assert upload.status_code == 404
    assert admin.get("/v1/collections/nope/documents").status_code == 404
