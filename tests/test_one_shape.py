"""One API shape (issue 14 item 13): one name for filters, one JSON shape for a hit and one for a citation.

The same hit and the same citation, over a real collection, read four ways: Python (``to_dict``), the real
CLI's ``--json``, and the real REST service on loopback (search, ask, the streamed ask, and the
OpenAI-compatible endpoint's ``citations``). They must carry the same keys with the same values (REST adds
each source's download ``url``). The generator is a scripted test double registered for the test, so every
entry point gets the same answer, citing block [1]; everything else (embedder, FAISS, the pipeline, the CLI,
uvicorn) is real.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from ragkit import registry
from ragkit.cli import app as cli_app
from ragkit.collection import Collection
from ragkit.generation import BaseGenerator, GenerationDelta, GenerationOptions, Message, Usage
from ragkit.rag import Citation, RagPipeline
from ragkit.schema import Chunk, Document, Hit
from ragkit.service import ApiKey, ServiceSettings, create_app
from tests.conftest import SAMPLE_DOCS
from tests.service.conftest import LiveServer, parse_sse

KEY = "one-shape-admin-key-0123456789"
QUESTION = "Where was Super Bowl 50 played?"
SCRIPT = "Super Bowl 50 was played at Levi's Stadium in Santa Clara [1]."
SCRIPT_NO_SOURCE = "Purple elephants quietly juggle umbrellas."

LOCATION = ["source", "uri", "start", "end", "page", "section", "row", "title"]
HIT_KEYS = {
    "rank",
    "score",
    "origin",
    "chunk_id",
    "document_id",
    *LOCATION,
    "text",
    "metadata",
    "scores",
    "ranks",
}
CITATION_KEYS = {"number", "chunk_id", "document_id", "score", *LOCATION, "quote", "positions", "inferred"}


class ScriptGenerator(BaseGenerator):
    """A FAKE generator: replays ``script`` word by word, the same answer for every entry point."""

    def __init__(self, script: str = SCRIPT) -> None:
        self.script = script

    @property
    def context_window(self) -> int:
        return 2048

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        words = self.script.split(" ")
        for i, word in enumerate(words):
            yield GenerationDelta(text=word if i == 0 else " " + word)
        yield GenerationDelta(finish_reason="stop", usage=Usage(self.count_message_tokens(messages), len(words)))


def pipeline_config(script: str) -> dict[str, Any]:
    return {
        "retrieval": {"mode": "dense", "top_k": 3, "min_score": 0.2},
        "generator": {"type": "one-shape-script", "script": script},
        "citations": {"infer_when_missing": True},
    }


def recipe(folder: Path, name: str, script: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps({"pipeline": {"type": "basic", **pipeline_config(script)}}), encoding="utf-8")
    return path  # JSON is YAML


@pytest.fixture()
def setup(sample_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The scripted generator registered, two recipes on disk, and the real service over the sample store."""
    monkeypatch.setitem(registry._registry, ("generator", "one-shape-script"), ScriptGenerator)
    cites = recipe(tmp_path, "cites", SCRIPT)
    silent = recipe(tmp_path, "silent", SCRIPT_NO_SOURCE)
    settings = ServiceSettings(
        store_dir=sample_store,
        api_keys=[ApiKey.model_validate({"key": KEY, "name": "admin", "scopes": ["admin"]})],
        ingest_roots=[SAMPLE_DOCS],  # where the sample store's files were read: their urls download them
        pipelines={"cites": pipeline_config(SCRIPT), "silent": pipeline_config(SCRIPT_NO_SOURCE)},
        default_pipeline="cites",
    )
    with LiveServer(create_app(settings)) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=180)
        with client:
            yield {"store": sample_store, "cites": cites, "silent": silent, "api": client}


def cli(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    return result


def with_url(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "url": f"/v1/collections/sample/sources/{quote(data['source'], safe='/')}"}


def test_a_hit_and_a_citation_have_one_shape_in_python_cli_and_rest(setup: dict[str, Any]) -> None:
    store, api, cites = str(setup["store"]), setup["api"], str(setup["cites"])
    pipeline = RagPipeline.load(cites)
    with Collection.open("sample", store_dir=setup["store"]) as col:
        searched = pipeline.search(QUESTION, col, top_k=3)
        answer = pipeline.ask(QUESTION, col)
    py_hits = [h.to_dict(rank) for rank, h in enumerate(searched.hits, 1)]
    py_answer = answer.to_dict()
    assert py_hits and py_answer["citations"], "the scripted answer cites block [1]"

    # the shape itself: every field at the top level, a citation located exactly as its hit
    hit, citation = py_answer["hits"][0], py_answer["citations"][0]
    assert set(hit) == HIT_KEYS and set(citation) == CITATION_KEYS
    assert [h["rank"] for h in py_hits] == list(range(1, len(py_hits) + 1))
    assert {k: hit[k] for k in LOCATION} == {k: citation[k] for k in LOCATION}
    assert hit["source"].endswith("super-bowl-50.pdf") and hit["page"] == hit["metadata"]["page"] == 1
    assert citation["chunk_id"] == hit["chunk_id"] and citation["number"] == 1 and not citation["inferred"]

    # the CLI: search --json and ask --json
    cli_search = json.loads(
        cli("search", QUESTION, "-c", "sample", "-p", cites, "-k", "3", "--store-dir", store, "--json").output
    )
    assert cli_search["hits"] == py_hits
    cli_answer = json.loads(cli("ask", QUESTION, "-c", "sample", "-p", cites, "--store-dir", store, "--json").output)
    assert cli_answer["hits"] == py_answer["hits"] and cli_answer["citations"] == py_answer["citations"]

    # REST: search, ask, the streamed ask and the OpenAI-compatible endpoint; each adds the source's url
    rest_search = api.post("/v1/collections/sample/search", json={"query": QUESTION, "top_k": 3, "pipeline": "cites"})
    assert rest_search.status_code == 200, rest_search.text
    assert rest_search.json()["hits"] == [with_url(h) for h in py_hits]
    rest_answer = api.post("/v1/collections/sample/ask", json={"question": QUESTION})
    assert rest_answer.status_code == 200, rest_answer.text
    assert rest_answer.json()["hits"] == [with_url(h) for h in py_answer["hits"]]
    assert rest_answer.json()["citations"] == [with_url(c) for c in py_answer["citations"]]
    opened = api.get(rest_answer.json()["citations"][0]["url"])  # a citation a user can open
    assert opened.status_code == 200 and opened.content == (SAMPLE_DOCS / citation["source"]).read_bytes()

    with api.stream("POST", "/v1/collections/sample/ask", json={"question": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        events = [(name, json.loads(data)) for name, data in parse_sse(response.iter_lines())]
    by_name: dict[str, list[Any]] = {}
    for name, data in events:
        by_name.setdefault(name, []).append(data)
    assert by_name["retrieval"][0]["hits"] == [with_url(h) for h in py_answer["hits"]]
    assert by_name["answer"][0]["citations"] == [with_url(c) for c in py_answer["citations"]]
    [streamed] = by_name["citation"]  # sent as soon as the marker is complete: its positions come at the end
    assert {**streamed, "positions": citation["positions"]} == with_url(citation)

    chat = api.post(
        "/v1/chat/completions", json={"model": "sample:cites", "messages": [{"role": "user", "content": QUESTION}]}
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["citations"] == [with_url(c) for c in py_answer["citations"]]
    body = {"model": "sample:cites", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with api.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: {")]
    [last] = [chunk for chunk in map(json.loads, lines) if "citations" in chunk]
    assert last["citations"] == [with_url(c) for c in py_answer["citations"]]


def test_filters_is_the_one_name_and_filter_still_works_with_a_warning(setup: dict[str, Any]) -> None:
    store, api = str(setup["store"]), setup["api"]
    only_txt = 'file_type == "txt"'
    with Collection.open("sample", store_dir=setup["store"]) as col:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the new name warns about nothing
            new = [h.chunk.id for h in col.search("plague", top_k=3, filters=only_txt)]
            batch = [[h.chunk.id for h in hits] for hits in col.search_many(["plague"], top_k=3, filters=only_txt)]
        with pytest.warns(DeprecationWarning, match=r"filter=\.\.\.\) is deprecated: use filters="):
            old = [h.chunk.id for h in col.search("plague", top_k=3, filter=only_txt)]
        with pytest.warns(DeprecationWarning, match=r"search_many\(filter=\.\.\.\) is deprecated: use filters="):
            old_batch = [[h.chunk.id for h in hits] for hits in col.search_many(["plague"], top_k=3, filter=only_txt)]
        assert new and new == old and batch == old_batch == [new]
        assert all(h.chunk.metadata["file_type"] == "txt" for h in col.search("plague", filters=only_txt))

    for flag in ("--filters", "--filter"):  # the old flag stays an alias
        output = cli("search", "plague", "-c", "sample", flag, only_txt, "-k", "3", "--store-dir", store, "--json")
        assert [h["chunk_id"] for h in json.loads(output.output)["hits"]] == new
    rest = api.post("/v1/collections/sample/search", json={"query": "plague", "top_k": 3, "filters": only_txt})
    assert [h["chunk_id"] for h in rest.json()["hits"]] == new


def test_an_answer_that_cites_nothing_is_not_grounded_anywhere(setup: dict[str, Any]) -> None:
    """Issue 14 item 18: ``grounded`` means a cited or inferred source, never an empty citation list."""
    store, api, silent = str(setup["store"]), setup["api"], str(setup["silent"])
    cli_answer = json.loads(cli("ask", QUESTION, "-c", "sample", "-p", silent, "--store-dir", store, "--json").output)
    assert cli_answer["hits"] and cli_answer["citations"] == [] and cli_answer["grounded"] is False
    text = cli("ask", QUESTION, "-c", "sample", "-p", silent, "--store-dir", store).output
    assert "(no sources cited: the answer is not grounded in the documents)" in text
    rest = api.post("/v1/collections/sample/ask", json={"question": QUESTION, "pipeline": "silent"}).json()
    assert rest["hits"] and rest["citations"] == [] and rest["grounded"] is False
    with api.stream(
        "POST", "/v1/collections/sample/ask", json={"question": QUESTION, "pipeline": "silent", "stream": True}
    ) as response:
        final = [json.loads(data) for name, data in parse_sse(response.iter_lines()) if name == "answer"]
    assert final[0]["citations"] == [] and final[0]["grounded"] is False
    cited = api.post("/v1/collections/sample/ask", json={"question": QUESTION}).json()
    assert cited["citations"] and cited["grounded"] is True


def test_hit_from_dict_reads_the_new_shape_and_the_old_nested_one() -> None:
    """Answer caches and stored reports hold hits in the old nested shape; both read back to the same hit."""
    doc = Document(
        id="d1", source="data/people.csv", text="name,age\nAda,36\n", metadata={"row": 2, "uri": "s3://b/people.csv"}
    )
    hit = Hit(Chunk.create(doc, "Ada,36", 9, {"page": 1}), 0.5, "reranked", {"dense": 0.4}, {"dense": 2})
    old = {"chunk": hit.chunk.to_dict(), "score": 0.5, "origin": "reranked", "scores": {"dense": 0.4}}
    assert Hit.from_dict(hit.to_dict(3)) == hit
    assert Hit.from_dict(json.loads(json.dumps(old))) == Hit(hit.chunk, 0.5, "reranked", {"dense": 0.4}, {})
    shape = hit.to_dict(3)
    assert (shape["rank"], shape["row"], shape["uri"], shape["page"]) == (3, 2, "s3://b/people.csv", 1)
    citation = Citation.from_hit(1, hit)
    assert (citation.row, citation.uri) == (2, "s3://b/people.csv")
    assert citation.location == "data/people.csv, page 1, row 2 [chars 9-15]"
