"""``POST /v1/collections/{name}/reindex`` over the real server (issue 14, item 16).

The rebuild runs as a background job in the collection's lane; the test holds
it inside its splitter (a registered test splitter that waits on a gate) to
show that searches meanwhile answer from the old generation and other writers
are kept out, then that the new config is served after the swap without a
restart. A rebuild that fails, or is cancelled, leaves the old collection
serving.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragkit import registry
from ragkit.collection import Collection
from ragkit.schema import Chunk, Document
from ragkit.service import ApiKey, ServiceSettings, create_app
from ragkit.splitters.recursive import RecursiveSplitter
from tests.service.conftest import LiveServer, wait_for_job
from tests.test_reindex import NARROW, TOPICS, WIDE, _corpus

ADMIN = "reindex-admin-key-0123456789"
WRITER = "reindex-writer-key-0123456789"


class GatedSplitter(RecursiveSplitter):
    """The real recursive splitter, held at its first call until the test opens the gate."""

    entered = threading.Event()
    gate = threading.Event()

    def split(self, documents: Sequence[Document]) -> list[Chunk]:
        type(self).entered.set()
        assert type(self).gate.wait(300), "the test never opened the gate"
        return super().split(documents)


GATED = {"splitter": {**NARROW["splitter"], "type": "reindex-gated-test"}}


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[httpx.Client, Path, Path]]:
    """Collection 'notes' (three files, 1,000-character chunks) behind the real server; an admin client."""
    monkeypatch.setitem(registry._registry, ("splitter", "reindex-gated-test"), GatedSplitter)
    GatedSplitter.entered.clear()
    GatedSplitter.gate.clear()
    home, corpus = tmp_path / "home", _corpus(tmp_path / "corpus")
    with Collection.create("notes", WIDE, store_dir=home) as notes:
        assert notes.ingest([corpus]).added == 3
    settings = ServiceSettings(
        store_dir=home,
        api_keys=[
            ApiKey.model_validate({"key": ADMIN, "name": "admin", "scopes": ["admin"]}),
            ApiKey.model_validate({"key": WRITER, "name": "writer", "scopes": ["write"]}),
        ],
    )
    try:
        with (
            LiveServer(create_app(settings)) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=180) as client,
        ):
            yield client, home, corpus
    finally:
        GatedSplitter.gate.set()


def _top(client: httpx.Client, query: str) -> dict[str, Any]:
    response = client.post("/v1/collections/notes/search", json={"query": query, "top_k": 1})
    assert response.status_code == 200, response.text
    hit: dict[str, Any] = response.json()["hits"][0]
    return hit


def _info(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/v1/collections/notes")
    assert response.status_code == 200, response.text
    info: dict[str, Any] = response.json()
    return info


def _leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "collections").iterdir() if p.name.startswith("."))


def test_reindex_serves_the_old_generation_until_the_swap_then_the_new_config(
    served: tuple[httpx.Client, Path, Path],
) -> None:
    client, home, corpus = served
    before = _info(client)
    assert "Eddystone" in _top(client, "Where is the Eddystone lighthouse?")["text"]  # open and warm

    writer = client.post(
        "/v1/collections/notes/reindex", json={"config": GATED}, headers={"Authorization": f"Bearer {WRITER}"}
    )
    assert writer.status_code == 403, "changing a collection's config needs the admin scope"

    response = client.post("/v1/collections/notes/reindex", json={"config": GATED})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "reindex" and response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert GatedSplitter.entered.wait(300), "the rebuild reached the splitter"
    try:
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
        assert len(_leftovers(home)) == 1, "the new generation is built beside the live one"
        # the old generation answers meanwhile
        assert "Eddystone" in _top(client, "Where is the Eddystone lighthouse?")["text"]
        assert _info(client)["counts"] == before["counts"]
        assert _info(client)["config"]["splitter"]["chunk_size"] == 1000
        # and other writers wait: a CLI ingest beside the server is refused by the writer lock
        cli = subprocess.run(
            [sys.executable, "-m", "ragkit.cli", "ingest", str(corpus), "-c", "notes", "--store-dir", str(home)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert cli.returncode == 4 and "another ingest into collection 'notes' is running" in cli.stderr, cli.stderr
    finally:
        GatedSplitter.gate.set()
    done = wait_for_job(client, job["id"], timeout=600)
    assert done["status"] == "succeeded", done
    assert done["reindex"]["sources"] == 3 and done["reindex"]["swap"] in ("exchange", "rename")

    after = _info(client)
    assert after["config"]["splitter"] == GATED["splitter"]
    assert after["counts"]["sources"] == 3
    assert after["counts"]["chunks"] == done["reindex"]["chunks_after"] > 2 * before["counts"]["chunks"]
    hit = _top(client, "Which volcano erupts every few years?")
    assert "Etna" in hit["text"] and len(hit["text"]) <= 200, "served from the new generation's small chunks"
    assert _leftovers(home) == [], "the old generation is removed"


def test_a_failing_or_cancelled_reindex_leaves_the_old_collection_serving(
    served: tuple[httpx.Client, Path, Path],
) -> None:
    client, home, corpus = served
    before = _info(client)

    failing = client.post(
        "/v1/collections/notes/reindex", json={"config": {**NARROW, "loader": {"max_file_bytes": 100}}}
    )
    assert failing.status_code == 202, failing.text
    failed = wait_for_job(client, failing.json()["id"], timeout=600)
    assert failed["status"] == "failed" and failed["error"]["type"] == "InputError", failed
    assert "the collection is unchanged" in failed["error"]["message"]
    assert _info(client) == before and _leftovers(home) == []
    assert "Eddystone" in _top(client, "Where is the Eddystone lighthouse?")["text"]

    cancelled = client.post("/v1/collections/notes/reindex", json={"config": GATED})
    assert GatedSplitter.entered.wait(300)
    stop = client.post(f"/v1/jobs/{cancelled.json()['id']}/cancel")
    assert stop.status_code == 200, stop.text
    GatedSplitter.gate.set()
    ended = wait_for_job(client, cancelled.json()["id"], timeout=600)
    assert ended["status"] == "cancelled", ended
    assert _info(client) == before and _leftovers(home) == []

    (corpus / next(iter(TOPICS))).unlink()
    missing = client.post("/v1/collections/notes/reindex", json={"config": NARROW})
    refused = wait_for_job(client, missing.json()["id"], timeout=600)
    assert refused["status"] == "failed" and refused["error"]["type"] == "ConflictError", refused
    assert "lighthouses.txt" in refused["error"]["message"] and "drop_missing" in refused["error"]["message"]
    assert _info(client) == before
    dropped = client.post("/v1/collections/notes/reindex", json={"config": NARROW, "drop_missing": True})
    assert wait_for_job(client, dropped.json()["id"], timeout=600)["status"] == "succeeded"
    assert _info(client)["counts"]["sources"] == 2


def test_a_bad_config_is_refused_before_a_job_is_queued(served: tuple[httpx.Client, Path, Path]) -> None:
    client, _, _ = served
    response = client.post("/v1/collections/notes/reindex", json={"config": {"splitter": {"type": "no-such"}}})
    assert response.status_code == 400, response.text
    assert "no-such" in response.json()["error"]["message"]
    assert client.post("/v1/collections/nothing/reindex", json={"config": NARROW}).status_code == 404


def test_uploaded_documents_are_reindexed_from_the_uploads_folder(served: tuple[httpx.Client, Path, Path]) -> None:
    client, _, _ = served
    note = b"# Harbour\n\nThe harbour master of Porthleven rings the bell at high tide.\n"
    upload = client.post("/v1/collections/notes/documents", files=[("files", ("harbour.md", note, "text/markdown"))])
    assert upload.status_code == 202, upload.text
    assert wait_for_job(client, upload.json()["id"])["status"] == "succeeded"
    sources_before = {d["source"] for d in client.get("/v1/collections/notes/documents").json()["documents"]}

    response = client.post("/v1/collections/notes/reindex", json={"config": NARROW})
    done = wait_for_job(client, response.json()["id"], timeout=600)
    assert done["status"] == "succeeded", done
    assert done["reindex"]["sources"] == 4 and done["reindex"]["dropped"] == []
    documents = client.get("/v1/collections/notes/documents").json()["documents"]
    assert {d["source"] for d in documents} == sources_before, "every source keeps its id"
    hit = _top(client, "Who rings the bell at high tide?")
    assert "Porthleven" in hit["text"] and hit["source"].endswith("harbour.md")
