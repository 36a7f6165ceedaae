"""Many questions and uploads at once: everything completes and the collection ends up as a clean ingest."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.service.conftest import SAMPLE, Service, new_collection, wait_for_job

QUESTIONS = [
    "Where was Super Bowl 50 played?",
    "What caused the 1973 oil crisis?",
    "How did the Black Death spread?",
    "What is packet switching?",
]


def test_twenty_asks_and_uploads_at_once(admin: httpx.Client, service: Service, docs_counts: dict[str, int]) -> None:
    new_collection(admin, "busy")
    samples = sorted(SAMPLE.iterdir())

    def ask(number: int) -> int:
        collection = "busy" if number % 4 == 3 else "docs"  # some ask the collection being ingested
        body = {"question": QUESTIONS[number % len(QUESTIONS)], "max_tokens": 4, "stream": number % 2 == 0}
        with service.client() as client:
            response = client.post(f"/v1/collections/{collection}/ask", json=body)
            if body["stream"]:
                assert "event: answer" in response.text and "event: error" not in response.text
            return response.status_code

    def upload(paths: list[Path]) -> httpx.Response:
        with service.client() as client:
            return client.post(
                "/v1/collections/busy/documents", files=[("files", (p.name, p.read_bytes())) for p in paths]
            )

    with ThreadPoolExecutor(max_workers=22) as pool:
        uploads = [pool.submit(upload, samples), pool.submit(upload, samples[:2])]
        asks = [pool.submit(ask, number) for number in range(20)]
        statuses = [future.result() for future in asks]
        accepted = [future.result() for future in uploads]

    assert statuses == [200] * 20
    assert [response.status_code for response in accepted] == [202, 202]
    jobs = [wait_for_job(admin, response.json()["id"]) for response in accepted]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
    assert all(job["errors"] == [] for job in jobs)
    assert sum(job["counts"]["added"] for job in jobs) == 5, "each file is added once, whichever job ran first"
    assert admin.get("/v1/collections/busy").json()["counts"] == docs_counts
    assert admin.get("/healthz").status_code == 200
