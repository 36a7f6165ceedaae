"""LangChain classes as ragkit components: loaders, splitters, chat models, embeddings (all offline).

Real LangChain classes throughout: langchain-community's TextLoader and CSVLoader,
langchain-text-splitters' RecursiveCharacterTextSplitter, langchain-openai's
ChatOpenAI against ragkit's fake OpenAI server (a wire-protocol fake of a remote
model server), and the vector store over the packaged embedder.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_openai import ChatOpenAI
from ragkit_langchain import RagkitVectorStore
from ragkit_langchain.generator import LangChainChatGenerator

from ragkit import Collection, registry
from ragkit.errors import ConfigError, FilterError, InputError
from ragkit.generation.base import GenerationOptions, Message
from ragkit.testing.fake_openai import FakeOpenAIServer

RECURSIVE = "langchain_text_splitters.RecursiveCharacterTextSplitter"
CSV_LOADER = "langchain_community.document_loaders.CSVLoader"
TEXT_LOADER = "langchain_community.document_loaders.TextLoader"


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAIServer(model="fake-chat") as server:
        yield server


def _chat(fake: FakeOpenAIServer, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(model="fake-chat", base_url=fake.v1, api_key="not-needed", max_retries=0, **kwargs)


# -- loaders -------------------------------------------------------------------------------


def test_langchain_loaders_ingest_files_with_rows_counted_from_one(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "cities.csv").write_text("city,country\nParis,France\nBerlin,Germany\nLisbon,Portugal\n")
    (data / "notes.log").write_text("The deploy on Tuesday failed because the disk was full.\n")
    config = {
        "loader": {
            "loaders": {
                ".csv": {"type": "langchain", "loader": CSV_LOADER},
                ".log": {"type": "langchain", "loader": TEXT_LOADER, "kwargs": {"encoding": "utf-8"}},
            }
        }
    }
    with Collection.create("loaded", config, store_dir=tmp_path / "home") as col:
        report = col.ingest(data)
        assert (report.added, report.failed) == (2, [])
        hit = col.search("Which country is Berlin in?", top_k=1, filters={"source": "cities.csv"})[0]
        assert "Berlin" in hit.chunk.text and hit.chunk.metadata["row"] == 2  # the second data row
        assert hit.chunk.metadata["file_type"] == "csv" and hit.chunk.source == "cities.csv"
        log = col.search("why did the deploy fail", top_k=1, mode="lexical")[0]
        assert log.chunk.source == "notes.log" and "disk was full" in log.chunk.text


def test_a_file_the_langchain_loader_cannot_read_fails_alone(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.txt").write_text("Plain text is read by ragkit's own loader.")
    (data / "bad.log").write_bytes(b"\xff\xfe not utf-8 \xff")
    config = {
        "loader": {"loaders": {".log": {"type": "langchain", "loader": TEXT_LOADER, "kwargs": {"encoding": "utf-8"}}}}
    }
    with Collection.create("partial", config, store_dir=tmp_path / "home") as col:
        report = col.ingest(data)
    assert report.added == 1
    assert [f.source for f in report.failed] == ["bad.log"] and "TextLoader" in report.failed[0].reason


def test_a_bad_loader_config_fails_when_built():
    with pytest.raises(ConfigError, match="no class 'NoSuchLoader'"):
        registry.build("loader", {"type": "langchain", "loader": "langchain_community.document_loaders.NoSuchLoader"})
    with pytest.raises(ConfigError, match="not a LangChain document loader"):
        registry.build("loader", {"type": "langchain", "loader": RECURSIVE})


# -- splitters -----------------------------------------------------------------------------


def test_a_langchain_splitter_gives_chunks_with_exact_offsets(tmp_path):
    text = "\n\n".join(" ".join(f"Sentence {j} of section {i} is about rivers." for j in range(12)) for i in range(3))
    config = {
        "splitter": {"type": "langchain", "splitter": RECURSIVE, "kwargs": {"chunk_size": 200, "chunk_overlap": 40}}
    }
    with Collection.create("split", config, store_dir=tmp_path / "home") as col:
        col.add_texts([text], ids=["rivers"])
        chunks = sorted((c for b in col.store.iter_chunks() for c in b), key=lambda c: c.start)
        assert len(chunks) > 4 and all(len(c.text) <= 200 for c in chunks)
        assert all(text[c.start : c.end] == c.text for c in chunks)
        assert [c.metadata["chunk_index"] for c in chunks] == list(range(len(chunks)))
        assert chunks[1].start < chunks[0].end  # the overlap is kept
    built = registry.build("splitter", config["splitter"])
    assert built.to_config() == {"type": "langchain", **{k: v for k, v in config["splitter"].items() if k != "type"}}


def test_a_splitter_that_rewrites_text_is_refused(monkeypatch):
    splitter = registry.build(
        "splitter", {"type": "langchain", "splitter": RECURSIVE, "kwargs": {"chunk_size": 50, "chunk_overlap": 0}}
    )
    monkeypatch.setattr(splitter.splitter, "split_text", lambda text: [text.upper()])
    from ragkit.schema import Document

    with pytest.raises(InputError, match="not in its text"):
        splitter.split([Document("d", "doc.txt", "some words here")])


# -- chat models -----------------------------------------------------------------------------


def test_a_langchain_chat_model_streams_as_a_ragkit_generator(fake):
    state = fake.reset(reply="Paris is the capital of France.")
    generator = registry.build(
        "generator",
        {
            "type": "langchain",
            "model": "langchain_openai.ChatOpenAI",
            "kwargs": {"model": "fake-chat", "base_url": fake.v1, "api_key": "x", "stream_usage": True},
        },
    )
    deltas = list(
        generator.stream([Message("user", "What is the capital of France?")], GenerationOptions(max_tokens=3))
    )
    text = "".join(d.text for d in deltas)
    assert text == "Paris is the"  # max_tokens reached the server (one word a token there)
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens == 3
    assert state.requests[-1]["body"]["stream"] is True
    assert generator.model_name == "fake-chat"


def test_without_usage_from_the_model_tokens_are_estimated(fake):
    fake.reset(reply="A short answer.", send_usage=False)
    generator = LangChainChatGenerator.wrap(_chat(fake))
    answer = generator.generate([Message("system", "Be brief."), Message("user", "Say something short")])
    assert answer.text == "A short answer."
    assert answer.usage.completion_tokens == generator.count_tokens("A short answer.") > 0
    assert answer.usage.prompt_tokens > 0


def test_tool_calls_pass_through_in_openai_shape(fake):
    fake.reset(tool_call={"name": "calculator", "arguments": '{"expression": "6*7"}'})
    generator = LangChainChatGenerator.wrap(_chat(fake))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "calculator",
                "description": "Evaluate arithmetic",
                "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
            },
        }
    ]
    result = generator.generate([Message("user", "What is 6 times 7?")], GenerationOptions(tools=tools))
    assert result.finish_reason == "tool_calls"
    (call,) = result.tool_calls
    assert call["function"]["name"] == "calculator"
    assert call["function"]["arguments"].replace(" ", "") == '{"expression":"6*7"}'
    # and a conversation carrying the call and its result goes back to the model
    fake.reset(reply="It is 42.")
    history = [
        Message("user", "What is 6 times 7?"),
        Message("assistant", "", tool_calls=[call]),
        Message("tool", "42", tool_call_id=call["id"]),
    ]
    assert generator.generate(history).text == "It is 42."


def test_async_stream_and_upstream_errors(fake):
    fake.reset(reply="one two three")
    generator = LangChainChatGenerator.wrap(_chat(fake))

    async def collect():
        return [d async for d in generator.astream([Message("user", "count")])]

    deltas = asyncio.run(collect())
    assert "".join(d.text for d in deltas) == "one two three"
    fake.reset(fail_always=500)
    from ragkit.errors import UpstreamError

    with pytest.raises(UpstreamError, match="500"):
        generator.generate([Message("user", "hello")])


def test_the_generator_config_round_trips_without_secrets(fake):
    generator = LangChainChatGenerator.wrap(_chat(fake, temperature=0.0))
    config = generator.to_config()
    assert config["type"] == "langchain" and config["model"] == "langchain_openai.chat_models.base.ChatOpenAI"
    assert "api_key" not in str(config["kwargs"]) and "not-needed" not in str(config)
    assert config["kwargs"]["temperature"] == 0.0
    with pytest.raises(ConfigError, match="not a LangChain chat model"):
        registry.build("generator", {"type": "langchain", "model": RECURSIVE})


# -- the vector store and embedders over the packaged model ----------------------------------


def test_texts_added_through_the_core_are_found_through_the_langchain_store(tmp_path):
    with Collection.create("kb", store_dir=tmp_path) as col:
        col.add_texts(
            ["Paris is the capital of France.", "The Nile flows through Egypt.", "Berlin is in Germany."],
            metadatas=[{"topic": "city"}, {"topic": "river"}, {"topic": "city"}],
            ids=["paris", "nile", "berlin"],
        )
        store = RagkitVectorStore(col)
        (doc,) = store.similarity_search("Which river is in Egypt?", k=1)
        assert doc == LCDocument(page_content="The Nile flows through Egypt.", metadata={"topic": "river"}, id="nile")
        cities = store.similarity_search("capital", k=3, filter="topic == 'city'")
        assert {d.id for d in cities} == {"paris", "berlin"}
        scored = store.similarity_search_with_relevance_scores("Paris France capital", k=1)
        assert scored[0][0].id == "paris" and 0.5 < scored[0][1] <= 1.0
        vector = store.embeddings.embed_query("Which river is in Egypt?")
        assert store.similarity_search_by_vector(vector, k=1)[0].id == "nile"
        mmr = store.max_marginal_relevance_search("capital city", k=2, fetch_k=3)
        assert len(mmr) == 2
        assert [d.id for d in store.as_retriever(search_kwargs={"k": 1}).invoke("Egyptian river")] == ["nile"]
        with pytest.raises(FilterError, match="colour"):
            store.similarity_search("capital", filter={"colour": "red"})


def test_from_texts_reopens_the_same_collection_and_refuses_another_embedder(tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    store = RagkitVectorStore.from_texts(
        ["alpha", "beta"], DeterministicFakeEmbedding(size=8), ids=["a", "b"], collection_name="fx", store_dir=tmp_path
    )
    assert store.collection.config.embedder["type"] == "langchain"
    store.collection.close()
    again = RagkitVectorStore("fx", store_dir=tmp_path)  # no embedding given: it rebuilds the recorded one
    assert [d.id for d in again.get_by_ids(["b", "a", "zzz"])] == ["b", "a"]
    again.collection.close()
    with pytest.raises(ConfigError, match="embeds with"):
        RagkitVectorStore("fx", DeterministicFakeEmbedding(size=16), store_dir=tmp_path)


def test_the_embedder_normalises_and_refuses_non_embeddings():
    embedder = registry.build(
        "embedder",
        {
            "type": "langchain",
            "embeddings": "langchain_core.embeddings.DeterministicFakeEmbedding",
            "kwargs": {"size": 12},
        },
    )
    vectors = embedder.embed_documents(["one", "two"])
    assert vectors.shape == (2, 12) and embedder.dimension == 12
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-5
    assert embedder.fingerprint.startswith("langchain:langchain_core.embeddings.DeterministicFakeEmbedding:")
    with pytest.raises(ConfigError, match="not a LangChain Embeddings"):
        registry.build("embedder", {"type": "langchain", "embeddings": RECURSIVE})
    with pytest.raises(ConfigError, match="could not be built"):
        registry.build(
            "embedder", {"type": "langchain", "embeddings": "langchain_core.embeddings.DeterministicFakeEmbedding"}
        )


def test_concurrent_async_adds_to_one_store_all_land(tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    store = RagkitVectorStore("concurrent", DeterministicFakeEmbedding(size=8), store_dir=tmp_path)

    async def add_all():
        return await asyncio.gather(*(store.aadd_texts([f"text number {i}"], ids=[f"t{i}"]) for i in range(6)))

    assert asyncio.run(add_all()) == [[f"t{i}"] for i in range(6)]
    assert sorted(d.id for d in store.get_by_ids([f"t{i}" for i in range(6)])) == [f"t{i}" for i in range(6)]
    store.collection.close()
