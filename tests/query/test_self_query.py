"""Self-query over real collections (real embedder; FAISS and Milvus Lite) with the real OpenAI client.

The model is the wire-protocol FAKE server of :mod:`ragkit.testing.fake_openai`
(scripted tool calls and text replies); one test runs the packaged SmolLM2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragkit import Collection
from ragkit.errors import FilterError
from ragkit.query import PipelineContext, QueryPipeline
from ragkit.query.self_query import TOOL_NAME, check_model_filter, collection_fields, schema_text
from ragkit.rag.config import load_pipeline_config
from ragkit.rag.pipeline import RagPipeline
from ragkit.testing.fake_openai import FakeOpenAIServer

RECORDS = [
    ("Dense retrieval with dual encoders improves document search.", 2021, "retrieval", "Smith"),
    ("Sparse retrieval with BM25 remains a strong search baseline.", 2018, "retrieval", "Jones"),
    ("Transformers improve machine translation between languages.", 2019, "translation", "Smith"),
    ("Retrieval-augmented generation combines search and text generation.", 2022, "retrieval", "Lee"),
    ("Cooking pasta al dente takes about ten minutes.", 2020, "cooking", "Rossi"),
    ("Neural retrieval for open-domain question answering.", 2023, "retrieval", "Smith"),
]
QUESTION = "retrieval papers by Smith after 2020"


def _make(tmp: Path, store: str) -> Path:
    docs = tmp / "docs"
    docs.mkdir()
    rows = [{"text": t, "year": y, "category": c, "author": a} for t, y, c, a in RECORDS]
    (docs / "papers.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    home = tmp / "home"
    config: dict[str, Any] = {"splitter": {"type": "recursive", "chunk_size": 400, "chunk_overlap": 0}}
    if store == "milvus":
        pytest.importorskip("ragkit_milvus")
        config["store"] = {"type": "milvus"}
    with Collection.create("papers", config, store_dir=home) as collection:
        report = collection.ingest([docs])
        assert not report.failed, report.failed
    return home


@pytest.fixture(scope="module", params=["faiss", "milvus"])
def papers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collection]:
    home = _make(tmp_path_factory.mktemp(request.param), request.param)
    with Collection.open("papers", store_dir=home) as collection:
        yield collection


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(model="fake-model") as server:
        yield server


def _pipeline(fake: FakeOpenAIServer, **options: Any) -> QueryPipeline:
    generator = {"type": "openai", "model": "fake-model", "base_url": fake.v1, "max_retries": 0}
    stages = [{"type": "self-query", "cache": False, **options}, {"type": "dense", "top_k": 6}]
    return QueryPipeline.from_configs(stages, top_k=6, context=PipelineContext(generator))


def _script(fake: FakeOpenAIServer, arguments: Any) -> Any:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return fake.reset(tool_call={"name": TOOL_NAME, "arguments": text})


def _metadata(result) -> list[dict[str, Any]]:
    return [hit.chunk.metadata for hit in result.hits]


def _notes(result) -> list[str]:
    return next(t for t in result.trace if t.stage == "self-query").notes


def test_the_schema_the_model_sees_comes_from_the_store(papers, fake):
    fields = collection_fields(papers)
    assert {"year", "category", "author", "source"} <= set(fields)
    assert not {"document_id", "chunk_index", "line", "encoding", "uri"} & set(fields)  # bookkeeping
    assert fields["year"].kinds == ("number",) and 2021 in fields["year"].examples
    assert fields["category"].examples[0] == "retrieval"  # the most common value first
    state = _script(fake, {"query": "retrieval", "filters": {}})
    _pipeline(fake).search(QUESTION, papers)
    body = state.on("/v1/chat/completions")[0]["body"]
    assert body["tools"][0]["function"]["name"] == TOOL_NAME
    assert body["tool_choice"]["function"]["name"] == TOOL_NAME
    prompt = body["messages"][0]["content"]
    assert schema_text(fields) in prompt and '"name": "year", "type": "number"' in prompt and "$gte" in prompt


def test_a_valid_filter_keeps_only_matching_hits_and_rewrites_the_query(papers, fake):
    _script(fake, {"query": "retrieval", "filters": {"$and": [{"author": "Smith"}, {"year": {"$gt": 2020}}]}})
    result = _pipeline(fake).search(QUESTION, papers)
    found = _metadata(result)
    assert sorted(m["year"] for m in found) == [2021, 2023]
    assert all(m["author"] == "Smith" for m in found)
    assert [q.text for q in result.queries] == ["retrieval"]
    assert any(note.startswith("filter: ") and '"Smith"' in note for note in _notes(result))


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"query": "x", "filters": {"venue": "ACL"}}, "filter field 'venue' does not exist"),
        ({"query": "x", "filters": {"year": "2021"}}, "holds numbers"),
        ({"query": "x", "filters": {"author": {"$startswith": "Sm"}}}, "unknown operator '$startswith'"),
        ({"query": "x", "filters": {"year": {"$prefix": "20"}}}, "needs a field of strings"),
        ('{"query": "x", "filters": {"year": ', "not a JSON object"),
        ({"query": "x", "filters": ["author", "Smith"]}, "must be a JSON object"),
    ],
    ids=["missing-field", "wrong-kind", "unknown-operator", "prefix-on-numbers", "garbage-json", "not-an-object"],
)
def test_invalid_output_falls_back_to_the_unfiltered_question(papers, fake, arguments, reason):
    _script(fake, arguments)
    result = _pipeline(fake).search(QUESTION, papers)
    assert len(result.hits) == len(RECORDS)  # nothing filtered away
    assert [q.text for q in result.queries] == [QUESTION]
    notes = _notes(result)
    assert any(note.startswith("rejected: ") and reason in note for note in notes), notes
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    assert any(note.startswith("raw output: ") and raw[:20] in note for note in notes)
    assert "fallback: searched the question as asked, without a model filter" in notes


def test_the_model_filter_is_anded_with_the_callers_filter(papers, fake):
    _script(fake, {"query": "search", "filters": {"author": "Smith"}})
    result = _pipeline(fake).search(QUESTION, papers, filters={"category": "retrieval"})
    found = _metadata(result)
    assert found and all(m["author"] == "Smith" and m["category"] == "retrieval" for m in found)
    assert sorted(m["year"] for m in found) == [2021, 2023]
    assert "combined (AND) with the caller's filters" in _notes(result)
    rejected = _script(fake, {"query": "search", "filters": {"venue": "x"}})
    fallback = _pipeline(fake).search(QUESTION, papers, filters={"category": "cooking"})
    assert [m["author"] for m in _metadata(fallback)] == ["Rossi"]  # the caller's filter still holds
    assert rejected.on("/v1/chat/completions")


def test_json_text_mode_reads_a_chatty_fenced_answer(papers, fake):
    answer = {"query": "cooking", "filters": {"year": {"$lte": 2020}, "category": "cooking"}}
    reply = f"Sure! Here is the search:\n```json\n{json.dumps(answer)}\n```"
    state = fake.reset(reply=reply)
    result = _pipeline(fake, structured="json").search("old cooking notes", papers)
    assert [m["author"] for m in _metadata(result)] == ["Rossi"]
    assert "tools" not in state.on("/v1/chat/completions")[0]["body"]


def test_lexical_retrieval_takes_the_filter_too(papers, fake):
    _script(fake, {"query": "retrieval", "filters": {"year": {"$in": [2018, 2022]}}})
    generator = {"type": "openai", "model": "fake-model", "base_url": fake.v1, "max_retries": 0}
    pipeline = QueryPipeline.from_configs(
        [{"type": "self-query", "cache": False}, {"type": "lexical", "top_k": 6}],
        context=PipelineContext(generator),
    )
    result = pipeline.search("retrieval from 2018 or 2022", papers)
    assert sorted(m["author"] for m in _metadata(result)) == ["Jones", "Lee"]


def test_check_model_filter_refuses_what_the_collection_cannot_hold(papers):
    fields = collection_fields(papers, fields=["year", "author"])
    assert set(fields) == {"year", "author"}
    assert check_model_filter({}, fields) is None
    assert check_model_filter({"year": {"$gte": 2020}}, fields) is not None
    with pytest.raises(FilterError, match="'category' does not exist"):
        check_model_filter({"category": "retrieval"}, fields)  # a real field the stage does not expose


def test_the_self_query_recipe_loads_and_builds():
    config = load_pipeline_config("self-query")
    stages = config.stage_configs()
    assert stages[0]["type"] == "self-query"
    pipeline = RagPipeline(config, name="self-query")
    assert [s.component_type for s in pipeline.query.stages][:1] == ["self-query"]


@pytest.mark.slow
def test_the_local_model_gives_a_filter_or_a_recorded_fallback(tmp_path):
    home = _make(tmp_path, "faiss")
    pipeline = QueryPipeline.from_configs(
        [{"type": "self-query", "cache": False, "max_tokens": 48}, {"type": "dense", "top_k": 6}],
        top_k=6,
        context=PipelineContext({"type": "transformers"}),
    )
    with Collection.open("papers", store_dir=home) as collection:
        result = pipeline.search(QUESTION, collection)
    entry = next(t for t in result.trace if t.stage == "self-query")
    assert entry.error is None, entry.error
    assert any(n.startswith(("filter: ", "rejected: ")) for n in entry.notes), entry.notes
    assert entry.calls and entry.calls[-1].completion_tokens <= 48
    if any(n.startswith("rejected: ") for n in entry.notes):
        assert len(result.hits) == len(RECORDS)


def test_answers_are_cached_and_the_async_path_filters_too(papers, fake):
    import asyncio

    state = _script(fake, {"query": "retrieval", "filters": {"author": "Jones"}})
    generator = {"type": "openai", "model": "fake-model", "base_url": fake.v1, "max_retries": 0}
    pipeline = QueryPipeline.from_configs(
        [{"type": "self-query"}, {"type": "dense", "top_k": 6}], top_k=6, context=PipelineContext(generator)
    )
    question = f"papers by Jones ({papers.store.__class__.__name__})"
    first = asyncio.run(pipeline.asearch(question, papers))
    second = pipeline.search(question, papers)
    assert [m["author"] for m in _metadata(first)] == ["Jones"] == [m["author"] for m in _metadata(second)]
    assert len(state.on("/v1/chat/completions")) == 1  # the second answer came from the cache
    entry = next(t for t in second.trace if t.stage == "self-query")
    assert entry.calls[0].cached


def test_the_stage_config_round_trips_and_bad_options_fail_when_built():
    from ragkit.errors import ConfigError
    from ragkit.query.stages import build_stage

    stage = build_stage({"type": "self-query", "structured": "json", "fields": ["year"], "name": "sq"})
    assert build_stage(stage.to_config()).to_config() == stage.to_config()
    with pytest.raises(ConfigError, match="'structured' must be auto, tool or json"):
        build_stage({"type": "self-query", "structured": "xml"})
    with pytest.raises(ConfigError, match=r"must contain the \{question\} placeholder"):
        build_stage({"type": "self-query", "prompt": "only {schema}"})
    with pytest.raises(ConfigError, match="'fields' must be a list of field names"):
        build_stage({"type": "self-query", "fields": "year"})
