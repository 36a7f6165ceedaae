"""A search racing ``DELETE /v1/collections/X`` over the real server: the answer is 404, never a 500.

A query-transform stage that waits on an event (a test stage, registered under
its own name) holds the search between opening the collection and retrieving,
so the delete lands in the middle of it every time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragkit import registry
from ragkit.collection import Collection
from ragkit.errors import StorageError
from ragkit.query.stages import QueryTransformStage, RetrieverStage
from ragkit.query.state import QueryState
from ragkit.rag import PipelineConfig, RagPipeline
from ragkit.service import ServiceSettings, create_app
from tests.service.conftest import LiveServer

GATE_OPEN = threading.Event()
GATE_REACHED = threading.Event()


class GateStage(QueryTransformStage):
    """A TEST stage: signals that a search reached it, then waits until the test opens the gate."""

    role = "query_transform"
    component_type = "test-gate"

    def run(self, states: list[QueryState]) -> None:
        GATE_REACHED.set()
        assert GATE_OPEN.wait(120), "the test never opened the gate"


class StoreGoneRetriever(RetrieverStage):
    """A TEST retriever failing the way a store whose files were deleted under it fails."""

    role = "retriever"
    component_type = "test-store-gone"

    def retrieve_many(self, collection: Any, queries: Any, top_k: int, filters: Any) -> list[list[Any]]:
        raise StorageError(f"cannot open {collection.folder}/store/store.sqlite: no such file or directory")


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    # registered for this test only: other tests list the registry's retrievers (e.g. the CLI's --mode error)
    for stage in (GateStage, StoreGoneRetriever):
        monkeypatch.setitem(registry._registry, (stage.role, stage.component_type), stage)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "plague.txt").write_text("The Black Death killed a third of Europe in the 1340s.\n", encoding="utf-8")
    with Collection.create("race", store_dir=tmp_path / "home") as collection:
        assert collection.ingest([corpus]).added == 1
    settings = ServiceSettings(store_dir=tmp_path / "home")
    gated = {"retrieval": {"top_k": 2}, "stages": [{"type": "test-gate"}, {"type": "dense"}]}
    failing = {"retrieval": {"top_k": 2}, "stages": [{"type": "test-gate"}, {"type": "test-store-gone"}]}
    pipelines = {
        "basic": RagPipeline(PipelineConfig.parse(gated), name="gated"),  # the default's name
        "failing": RagPipeline(PipelineConfig.parse(failing), name="failing"),
    }
    with LiveServer(create_app(settings, pipelines=pipelines)) as live:
        yield live


@pytest.mark.parametrize(
    "pipeline",
    ["basic", "failing"],
    ids=["search-finishes-on-the-closed-collection", "store-error-after-the-delete"],
)
def test_a_search_racing_a_delete_is_404_not_500(server: LiveServer, pipeline: str) -> None:
    GATE_OPEN.clear()
    GATE_REACHED.clear()
    outcome: dict[str, Any] = {}

    def search() -> None:
        with httpx.Client(base_url=server.url, timeout=180) as client:
            outcome["response"] = client.post(
                "/v1/collections/race/search", json={"query": "Black Death", "pipeline": pipeline}
            )

    searching = threading.Thread(target=search)
    searching.start()
    try:
        assert GATE_REACHED.wait(120), "the search never reached the gate"
        with httpx.Client(base_url=server.url, timeout=180) as client:
            assert client.delete("/v1/collections/race").status_code == 204
    finally:
        GATE_OPEN.set()
        searching.join(180)
    response: httpx.Response = outcome["response"]
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["type"] == "NotFoundError" and "'race' does not exist" in error["message"]
