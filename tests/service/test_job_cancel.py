"""Cancelling an ingest job over HTTP: the same meaning, statuses and conflicts as cancelling an evaluation."""

from __future__ import annotations

import threading

import httpx

from tests.service.conftest import READER_KEY, Service, new_collection, wait_for_job


def test_a_queued_job_is_cancelled_and_never_ingests(admin: httpx.Client, service: Service) -> None:
    new_collection(admin, "cancels")
    held = threading.Event()
    release = threading.Event()

    def hold_the_lane() -> None:  # the collection's lane is busy, so the next job waits
        held.set()
        assert release.wait(60)

    blocker = service.app.state.ragkit.jobs.run_exclusive("cancels", hold_the_lane)
    try:
        assert held.wait(60)
        queued = admin.post("/v1/collections/cancels/ingest", json={"path": "corpus"}).json()
        assert queued["status"] == "queued"

        with service.client(READER_KEY) as reader:
            assert reader.post(f"/v1/jobs/{queued['id']}/cancel").status_code == 403
        cancelled = admin.post(f"/v1/jobs/{queued['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert body["status"] == "cancelled" and body["started_at"] is None and body["counts"] is None
        assert body["error"] == {"type": "Cancelled", "message": "cancelled before it started"}
    finally:
        release.set()
        blocker.result(60)

    assert wait_for_job(admin, queued["id"])["status"] == "cancelled"
    again = admin.post(f"/v1/jobs/{queued['id']}/cancel")
    assert again.status_code == 409 and "has already cancelled" in again.json()["error"]["message"]
    assert admin.post("/v1/jobs/job_nope/cancel").status_code == 404
    assert admin.get("/v1/collections/cancels").json()["counts"]["sources"] == 0, "nothing was ingested"
