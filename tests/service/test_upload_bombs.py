"""A decompression bomb uploaded to the service fails alone, naming the limit (issue 14, item 6)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.service.conftest import UPLOAD_LIMIT, Service, new_collection, wait_for_job
from tests.test_loader_limits import bomb

NOTE = b"# Lighthouses\n\nThe Eddystone lighthouse stands on rocks fourteen kilometres south of Plymouth.\n"


def test_uploaded_docx_bomb_fails_with_the_limit_named_and_the_rest_is_kept(
    admin: httpx.Client, service: Service, tmp_path: Path
) -> None:
    new_collection(admin, "bombs")
    path = bomb(tmp_path / "report.docx")  # 60 MB of XML in about 200 KB
    assert path.stat().st_size < UPLOAD_LIMIT, "the bomb fits under the upload limit"
    files = [
        ("files", ("report.docx", path.read_bytes(), "application/octet-stream")),
        ("files", ("lighthouses.md", NOTE, "text/markdown")),
    ]
    response = admin.post("/v1/collections/bombs/documents", files=files)
    assert response.status_code == 202, response.text
    job = wait_for_job(admin, response.json()["id"])
    assert job["status"] == "succeeded", job
    failed = {Path(e["source"]).name: e["reason"] for e in job["errors"]}
    assert set(failed) == {"report.docx"}, job
    assert "max_member_bytes limit of 50,000,000" in failed["report.docx"], failed
    assert job["counts"]["added"] == 1 and job["counts"]["failed"] == 1
    counts = admin.get("/v1/collections/bombs").json()["counts"]
    assert counts["sources"] == 1 and counts["chunks"] == job["counts"]["chunks_written"]
    hits = admin.post("/v1/collections/bombs/search", json={"query": "Where is the Eddystone lighthouse?", "top_k": 1})
    assert "Plymouth" in hits.json()["hits"][0]["text"]
