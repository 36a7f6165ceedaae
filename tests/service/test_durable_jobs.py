"""Ingest jobs survive a restart of the service: real ``serve()`` processes on loopback, killed with SIGKILL.

One story, three processes over one home (each start loads the real embedder once):

1. a seed upload succeeds; a path ingest of many files runs, an upload waits behind it in the
   collection's lane, and a third upload is cut off half-way through its body; the service is
   killed (SIGKILL) while the path ingest runs;
2. the restarted service resumes both jobs to completion under their ids, reports the cut-off upload
   as an ``interrupted`` job listing its files, still shows the seed job's per-file results, and the
   collection holds every file once (the seed still searchable); then a job waits behind another
   while the service is stopped cleanly (SIGINT): it stays queued on disk instead of being cancelled;
3. started with ``resume_jobs: false``, the service marks that job ``interrupted`` with its files listed.

Then, in this process: the jobs that cannot be resumed (a reindex, a path now outside the roots, a
job that already stopped the service too often, a deleted collection's) and the retention of records.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from ragkit.service.job_store import JobStore
from tests.service.conftest import free_port
from tests.service.test_serve import wait_until_serving

SCRIPT = """
import sys
from ragkit.service import ServiceSettings, serve
serve(ServiceSettings(port=int(sys.argv[1]), store_dir=sys.argv[2], ingest_roots=[sys.argv[3]],
                      resume_jobs=sys.argv[4] == "resume", log_level="INFO", log_json=True))
"""
SEED = "The lighthouse keeper of Ardmore feeds seventeen grey cats every morning."
CUT_OFF = ["c1.txt", "c2.txt"]


class Service:
    """One ``serve()`` process over ``home``; its log goes to a file (a killed process leaves no pipe to drain)."""

    def __init__(self, home: Path, roots: Path, log: Path, resume: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "w") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SCRIPT, str(self.port), str(home), str(roots), "resume" if resume else "no"],
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        wait_until_serving(self.process, self.port)
        self.client = httpx.Client(base_url=self.url, timeout=120)

    def kill(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=120) == 0, self.log.read_text()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def upload(self, names: list[str], text: str = "") -> dict[str, Any]:
        files = [("files", (name, f"{text or name} is a small uploaded note.")) for name in names]
        response = self.client.post("/v1/collections/docs/documents", files=files)
        assert response.status_code == 202, response.text
        return dict(response.json())

    def finished(self, job_id: str) -> dict[str, Any]:
        return wait_for(lambda: (job := self.job(job_id))["status"] not in ("queued", "running") and job, job_id)


def wait_for(probe: Callable[[], Any], what: str, limit: float = 180) -> Any:
    """Poll ``probe`` until it returns something truthy (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not (result := probe()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)
    return result


def start_cut_off_upload(port: int) -> socket.socket:
    """Send an upload's headers, one whole file and the start of a second, then nothing more."""
    boundary = "cutoffboundary"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: text/plain\r\n\r\n"
        for name in CUT_OFF[:1]
    )
    body = (head + "the whole first file\r\n").encode() + (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{CUT_OFF[1]}"\r\n'
        "Content-Type: text/plain\r\n\r\nthe start of the second file, and then the service stops".encode()
    )
    request = (
        f"POST /v1/collections/docs/documents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body) + 100_000}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(request + body)
    return sock


def staged(home: Path) -> list[Path]:
    return sorted(p for p in (home / "staging").glob("*/*") if p.is_file()) if (home / "staging").is_dir() else []


def test_jobs_survive_sigkill_and_clean_restarts(tmp_path: Path) -> None:
    home, roots = tmp_path / "home", tmp_path / "roots"
    many = roots / "many"
    many.mkdir(parents=True)
    for number in range(40):
        (many / f"f{number:02}.txt").write_text(f"File {number} is about the river number {number}.")
    (roots / "more").mkdir()
    for number in range(30):
        # a few chunks each: this ingest is still running when the service is told to stop
        text = " ".join(f"Note {number}, paragraph {p}: the hill number {number} has {p} paths." for p in range(30))
        (roots / "more" / f"m{number:02}.txt").write_text(text)

    # -- 1: killed while a path ingest runs, an upload waits behind it, another upload is half received
    first = Service(home, roots, tmp_path / "first.log")
    try:
        assert first.client.post("/v1/collections", json={"name": "docs"}).status_code == 201
        seed = first.finished(first.upload(["seed.txt"], SEED)["id"])
        assert seed["status"] == "succeeded" and seed["counts"]["added"] == 1
        cut_off = start_cut_off_upload(first.port)
        wait_for(lambda: [p.name for p in staged(home) if p.name in CUT_OFF] == CUT_OFF, "the cut-off upload")
        running = first.client.post("/v1/collections/docs/ingest", json={"path": str(many)}).json()
        waiting = first.upload(["w1.txt", "w2.txt", "w3.txt"])
        wait_for(lambda: first.job(running["id"])["status"] == "running", "the path ingest to run")
        assert first.job(waiting["id"])["status"] == "queued", "it waits in the collection's lane"
    finally:
        first.kill()
    cut_off.close()
    store = JobStore(home / "jobs")
    at_kill = {job_id: store.read(job_id) for job_id in (running["id"], waiting["id"])}
    assert all(record and record["status"] in ("queued", "running") for record in at_kill.values()), at_kill

    # -- 2: resumed to completion; the cut-off upload reported; finished results kept
    second = Service(home, roots, tmp_path / "second.log")
    try:
        resumed = second.finished(running["id"])
        assert resumed["status"] == "succeeded" and resumed["resumed"] == 1 and resumed["resumed_at"]
        assert resumed["created_at"] == running["created_at"], "the same job, under its id"
        assert resumed["counts"]["added"] + resumed["counts"]["unchanged"] == 40 and resumed["errors"] == []
        upload = second.finished(waiting["id"])
        assert upload["status"] == "succeeded" and upload["resumed"] == 1 and upload["counts"]["added"] == 3
        assert second.job(seed["id"]) == seed, "a finished job's per-file results survive the restart"

        reported = [
            re.search(r"job_[0-9a-f]{32}", line["message"]) for line in second.lines() if "cut off" in line["message"]
        ]
        assert len(reported) == 1 and reported[0], second.log.read_text()
        lost = second.job(reported[0].group(0))
        assert lost["status"] == "interrupted" and lost["collection"] == "docs" and lost["kind"] == "upload"
        assert lost["not_ingested"] == CUT_OFF and lost["error"]["type"] == "Interrupted"
        assert "upload them again" in lost["error"]["message"]
        listed = second.client.get("/v1/jobs", params={"status": "interrupted"}).json()["jobs"]
        assert listed == [lost], "the client never got its id: the listing shows it"
        assert staged(home) == [], "the cut-off upload's partial files are removed; the resumed ones were ingested"

        info = second.client.get("/v1/collections/docs").json()
        assert info["counts"]["sources"] == 1 + 40 + 3, "every file once: nothing half-written, nothing twice"
        hits = second.client.post("/v1/collections/docs/search", json={"query": SEED, "top_k": 1}).json()["hits"]
        assert hits[0]["source"] == "seed.txt"

        # a clean stop keeps a queued job queued (with its files) instead of cancelling it
        ahead = second.client.post("/v1/collections/docs/ingest", json={"path": str(roots / "more")}).json()
        behind = second.upload(["q1.txt", "q2.txt"])
        assert second.job(behind["id"])["status"] == "queued"
    finally:
        second.stop()
    assert store.read(behind["id"])["status"] == "queued"  # type: ignore[index]
    assert store.read(ahead["id"])["status"] == "succeeded", "a running ingest finishes before the service stops"  # type: ignore[index]

    # -- 3: resume_jobs off: the queued job is interrupted, its files listed, nothing left staged
    third = Service(home, roots, tmp_path / "third.log", resume=False)
    try:
        stopped = third.job(behind["id"])
        assert stopped["status"] == "interrupted" and stopped["not_ingested"] == ["q1.txt", "q2.txt"]
        assert "resume_jobs is off" in stopped["error"]["message"]
        assert third.client.post(f"/v1/jobs/{behind['id']}/cancel").status_code == 409
        listed = third.client.get("/v1/jobs", params={"collection": "docs"}).json()["jobs"]
        assert [job["id"] for job in listed][:2] == [behind["id"], ahead["id"]], "newest first"
        assert {job["id"] for job in listed} >= {seed["id"], running["id"], waiting["id"], lost["id"]}
        assert staged(home) == []
        assert third.client.get("/v1/collections/docs").json()["counts"]["sources"] == 1 + 40 + 3 + 30
    finally:
        third.stop()


def test_finished_job_records_are_bounded_by_count_and_age(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for number in range(6):
        when = (start + timedelta(days=number)).isoformat()
        status = "running" if number == 0 else "succeeded"
        store.save({"id": f"job_{number:032x}", "status": status, "created_at": when, "finished_at": when})
    assert store.prune(max_kept=3, max_age_days=None) == 2, "the two oldest finished ones go"
    kept = [r["id"] for r in store.records()]
    assert kept == [f"job_{n:032x}" for n in (0, 3, 4, 5)], "a job that has not finished is never dropped"
    assert store.prune(max_kept=10, max_age_days=1.5, now=start + timedelta(days=6)) == 2
    assert [r["id"] for r in store.records()] == [f"job_{n:032x}" for n in (0, 5)]
    assert store.read("../../etc/passwd") is None and store.read("job_x") is None
    assert sorted(os.listdir(tmp_path / "jobs")) == [f"job_{n:032x}.json" for n in (0, 5)]


def test_what_cannot_be_resumed_is_interrupted_with_its_reason(tmp_path: Path) -> None:
    from ragkit.collection import Collection
    from ragkit.service.job_recovery import MAX_RESUMES, recover
    from ragkit.service.jobs import JobManager
    from ragkit.service.stores import CollectionCache
    from ragkit.service.tasks import TaskQueue

    home = tmp_path / "home"
    Collection.create("docs", None, home).close()
    store = JobStore(home / "jobs")
    when = datetime(2026, 1, 1, tzinfo=UTC).isoformat()

    def left(number: int, kind: str, collection: str = "docs", **extra: Any) -> str:
        """A record as a killed service leaves it: running, with what it needs to run again."""
        job_id = f"job_{number:032x}"
        store.save(
            {"id": job_id, "collection": collection, "kind": kind, "status": "running", "created_at": when, **extra}
        )
        return job_id

    reindex = left(1, "reindex", sources=[], spec={})
    outside = left(2, "path", sources=["/srv/old"], spec={"path": "/srv/old", "sync": False, "prefix": ""})
    staging = home / "staging" / "abc"
    staging.mkdir(parents=True)
    (staging / "a.txt").write_text("a note")
    upload_spec = {"staging": str(staging), "files": [{"name": "a.txt", "size": 6}], "prefix": ""}
    looping = left(3, "upload", sources=["a.txt"], spec=upload_spec, resumed=MAX_RESUMES)
    gone = left(4, "upload", collection="deleted", sources=["b.txt"], spec={"staging": "/nowhere", "files": []})

    queue = TaskQueue()
    cache = CollectionCache(home)
    jobs = JobManager(queue, store=store, collections=cache)
    try:
        handled = recover(jobs, roots=[], resume=True)
        assert sorted(job.id for job in handled) == [reindex, outside, looping, gone]
        assert queue.tasks() == [], "nothing here can be resumed"
        shown = {job_id: jobs.get(job_id).to_dict() for job_id in (reindex, outside, looping, gone)}
    finally:
        queue.close()
        cache.close()
        store.release()
    assert all(job["status"] == "interrupted" and job["error"]["type"] == "Interrupted" for job in shown.values())
    assert "collection is unchanged" in shown[reindex]["error"]["message"] and shown[reindex]["not_ingested"] == []
    assert "cannot be ingested now" in shown[outside]["error"]["message"]
    assert shown[outside]["not_ingested"] == ["/srv/old"]
    assert f"{MAX_RESUMES + 1} times" in shown[looping]["error"]["message"]
    assert shown[looping]["not_ingested"] == ["a.txt"] and not staging.exists(), "its staged file is removed"
    assert "'deleted' no longer exists" in shown[gone]["error"]["message"]
    assert shown[gone]["not_ingested"] == ["b.txt"]
