"""End to end: a LangChain LCEL chain (ragkit retriever | prompt | ChatOpenAI) over a real ragkit collection.

The collection holds two SQuAD dev articles, ingested by ragkit (packaged embedder,
FAISS, BM25); the chat model is langchain-openai's ChatOpenAI talking HTTP to ragkit's
fake OpenAI server. What is checked is what a user of the chain relies on: the
documents the chain retrieved carry ragkit's citation fields, exact enough to
cite, and they reached the model's prompt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableParallel, RunnablePassthrough
from langchain_openai import ChatOpenAI
from ragkit_langchain import RagkitRetriever

from ragkit import Collection
from ragkit.testing.fake_openai import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[3]
SQUAD = REPO.parent / "shared" / "datasets" / "squad-dev" / "documents"
ARTICLES = ["0002-normans.md", "0000-super-bowl-50.md"]

pytestmark = pytest.mark.skipif(not SQUAD.is_dir(), reason=f"the squad-dev documents are not at {SQUAD}")


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("squad-home")
    with Collection.create("squad", store_dir=home) as col:
        report = col.ingest([SQUAD / name for name in ARTICLES])
        assert (report.added, report.failed) == (2, [])
        yield col


def _numbered(docs: list[LCDocument]) -> str:
    return "\n\n".join(
        f"[{i}] {d.metadata['source']} ({d.metadata['section'] or 'intro'}): {d.page_content}"
        for i, d in enumerate(docs, 1)
    )


def test_an_lcel_chain_answers_from_ragkit_hits_that_carry_citations(collection):
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer from the numbered sources only and cite them like [1]."),
            ("human", "Sources:\n{context}\n\nQuestion: {question}"),
        ]
    )
    with FakeOpenAIServer(model="fake-chat") as fake:
        state = fake.reset(reply="Rollo led the Norse raiders who became the Normans [1].")
        llm = ChatOpenAI(model="fake-chat", base_url=fake.v1, api_key="not-needed", max_retries=0)
        retriever = RagkitRetriever(collection=collection, pipeline="basic", k=3)
        chain = RunnableParallel(docs=retriever, question=RunnablePassthrough()).assign(
            answer=(lambda x: {"context": _numbered(x["docs"]), "question": x["question"]})
            | prompt
            | llm
            | StrOutputParser()
        )
        result = chain.invoke("Who was the leader of the Norse raiders who swore fealty to King Charles III?")

    assert result["answer"] == "Rollo led the Norse raiders who became the Normans [1]."
    docs = result["docs"]
    assert len(docs) == 3
    top = docs[0]
    assert top.metadata["source"] == "0002-normans.md" and "Rollo" in top.page_content
    # ragkit's citation fields, exact: the span is the file's text, the uri opens the file
    text = (SQUAD / top.metadata["source"]).read_text(encoding="utf-8")
    assert text[top.metadata["start"] : top.metadata["end"]] == top.page_content
    assert top.metadata["uri"] == (SQUAD / "0002-normans.md").absolute().as_uri()
    assert top.id == top.metadata["chunk_id"] and top.metadata["document_id"]
    assert top.metadata["rank"] == 1 and top.metadata["origin"] == "dense"
    assert [d.metadata["score"] for d in docs] == sorted((d.metadata["score"] for d in docs), reverse=True)
    assert "section" in top.metadata and "page" in top.metadata
    # the retrieved passages are what the model was shown
    sent = state.requests[-1]["body"]["messages"][-1]["content"]
    assert "[1] 0002-normans.md" in sent and top.page_content in sent


async def test_the_same_chain_runs_async_with_a_filter(collection):
    retriever = RagkitRetriever(
        collection=collection, pipeline="basic", k=2, filters={"source": "0000-super-bowl-50.md"}
    )
    docs = await retriever.ainvoke("Which team won the game?")
    assert docs and {d.metadata["source"] for d in docs} == {"0000-super-bowl-50.md"}
    docs = await retriever.ainvoke("Where did the Normans come from?", k=1, filters="source.startswith('0002')")
    assert [d.metadata["source"] for d in docs] == ["0002-normans.md"]


def test_a_collection_gives_its_langchain_retriever(collection):
    """``Collection.as_retriever()`` is LangChain's by default: the core finds this connector by its entry point."""
    from langchain_core.retrievers import BaseRetriever

    retriever = collection.as_retriever("basic", k=2)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("Who led the Norse raiders?")
    assert len(docs) == 2 and all(doc.metadata["chunk_id"] for doc in docs)
