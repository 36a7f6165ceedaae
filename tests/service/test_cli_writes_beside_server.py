"""A running server and a CLI ingest into the same collection: the server serves the new file at once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ragkit.collection import Collection
from ragkit.service import ServiceSettings, create_app
from tests.service.conftest import LiveServer

PLAGUE = "The Black Death killed a third of Europe in the 1340s.\n"
TURBINES = "Wind turbines in the North Sea now supply the grid of Denmark with zephyrite power.\n"


@pytest.fixture()
def home(tmp_path: Path) -> Iterator[tuple[Path, Path, LiveServer]]:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "plague.txt").write_text(PLAGUE, encoding="utf-8")
    with Collection.create("live", store_dir=tmp_path / "home") as collection:
        assert collection.ingest([corpus]).added == 1
    settings = ServiceSettings(store_dir=tmp_path / "home")
    with LiveServer(create_app(settings)) as server:
        yield tmp_path / "home", corpus, server


def _search(server: LiveServer, query: str, mode: str) -> list[str]:
    response = httpx.post(
        f"{server.url}/v1/collections/live/search", json={"query": query, "mode": mode, "top_k": 5}, timeout=120
    )
    assert response.status_code == 200, response.text
    return [hit["source"].rsplit("/", 1)[-1] for hit in response.json()["hits"]]


def test_a_cli_ingest_beside_the_running_server_is_served_without_a_restart(
    home: tuple[Path, Path, LiveServer],
) -> None:
    store_dir, corpus, server = home
    assert _search(server, "zephyrite wind power", "dense") == ["plague.txt"]  # the index is loaded and warm
    (corpus / "turbines.txt").write_text(TURBINES, encoding="utf-8")
    ingest = subprocess.run(
        [sys.executable, "-m", "ragkit.cli", "ingest", str(corpus), "-c", "live", "--store-dir", str(store_dir)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr
    assert _search(server, "zephyrite wind power", "dense")[0] == "turbines.txt", "dense sees the other writer's file"
    assert _search(server, "zephyrite", "lexical") == ["turbines.txt"]
    info = httpx.get(f"{server.url}/v1/collections/live", timeout=60).json()
    assert info["stats"]["chunks"] == 2 and info["stats"]["sources"] == 2
