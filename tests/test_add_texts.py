"""Text held in memory: Collection.add_texts / add_documents / get_documents / delete_documents.

Real components throughout: the packaged embedder, FAISS + SQLite, the BM25 index.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit import Collection
from ragkit.errors import ConflictError, InputError
from ragkit.schema import Document

PARIS = "Paris is the capital of France. The Eiffel Tower stands on the Champ de Mars."
BERLIN = "Berlin is the capital of Germany. The Brandenburg Gate is its best-known landmark."
NILE = "The Nile is a major north-flowing river in northeastern Africa, about 6,650 km long."


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("texts-home")


@pytest.fixture
def col(home: Path, request: pytest.FixtureRequest):
    with Collection.create(request.node.name[:60].replace("[", "-").replace("]", ""), store_dir=home) as c:
        yield c


def _chunk_writes(col: Collection, texts, **kwargs) -> tuple[list[str], int]:
    """add_texts, returning the ids and how many chunks were written (from the progress callback)."""
    written: list[int] = [0]

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "chunks":
            written[0] = done

    ids = col.add_texts(texts, progress=progress, **kwargs)
    return ids, written[0]


def test_texts_are_searchable_with_their_metadata_and_ids(col):
    ids = col.add_texts([PARIS, BERLIN], metadatas=[{"lang": "en", "year": 2020}, None], ids=["fr", "de"])
    assert ids == ["fr", "de"]
    hit = col.search("Which city is the capital of France?", top_k=1)[0]
    assert (hit.chunk.source, hit.chunk.text) == ("fr", PARIS)
    assert hit.chunk.metadata["lang"] == "en" and "uri" not in hit.chunk.metadata
    assert (hit.chunk.start, hit.chunk.end) == (0, len(PARIS))
    # metadata filters and the source id filter both apply, dense and lexical
    assert [h.chunk.source for h in col.search("capital", top_k=5, filters="year >= 2020")] == ["fr"]
    assert [h.chunk.source for h in col.search("capital", top_k=5, filters={"source": "de"}, mode="lexical")] == ["de"]


def test_same_text_again_costs_nothing_and_a_changed_text_replaces_its_chunks(col):
    _, written = _chunk_writes(col, [PARIS, BERLIN], ids=["a", "b"])
    assert written == 2
    _, written = _chunk_writes(col, [PARIS, BERLIN], ids=["a", "b"])
    assert written == 0  # unchanged: nothing split, embedded or stored
    _, written = _chunk_writes(col, [NILE], ids=["a"])
    assert written == 1
    assert col.store.count() == 2
    assert [h.chunk.text for h in col.search("Eiffel Tower", top_k=5, mode="lexical")] == []
    assert col.search("long river in Africa", top_k=1)[0].chunk.source == "a"
    assert col.search("Nile", top_k=1, mode="lexical")[0].chunk.source == "a"


def test_changed_metadata_alone_updates_the_chunks(col):
    col.add_texts([PARIS], metadatas=[{"tag": "old"}], ids=["p"])
    col.add_texts([PARIS], metadatas=[{"tag": "new"}], ids=["p"])
    assert col.store.count() == 1
    assert col.search("Paris", top_k=5, filters="tag == 'new'")[0].chunk.source == "p"
    assert col.search("Paris", top_k=5, filters="tag == 'old'") == []


def test_without_ids_the_same_text_is_stored_once(col):
    first = col.add_texts([PARIS, BERLIN, PARIS])
    assert first[0] == first[2] != first[1] and first[0].startswith("text-")
    assert col.add_texts([PARIS]) == [first[0]]
    assert col.store.count() == 2
    # the same text with other metadata is another document
    other = col.add_texts([PARIS], metadatas=[{"lang": "en"}])
    assert other[0] not in first and col.store.count() == 3


def test_delete_documents_removes_vectors_and_keywords(col):
    col.add_texts([PARIS, BERLIN, NILE], ids=["1", "2", "3"])
    assert col.delete_documents(["1", "2", "missing"]) == 2
    assert {h.chunk.source for h in col.search("capital", top_k=5)} == {"3"}
    assert col.search("Eiffel Brandenburg", top_k=5, mode="lexical") == []
    assert col.get_documents(["1", "2"]) == []
    assert col.delete_documents(["1"]) == 0


def test_add_documents_takes_dicts_and_ragkit_documents(col):
    pages = [
        Document("p1", "report.pdf", PARIS, metadata={"page": 1}),
        Document("p2", "report.pdf", BERLIN, metadata={"page": 2}),
    ]
    ids = col.add_documents([*pages, {"page_content": NILE, "metadata": {"kind": "geo"}, "id": "nile"}])
    assert ids == ["report.pdf", "report.pdf", "nile"]
    hit = col.search("Brandenburg Gate", top_k=1)[0]
    assert (hit.chunk.source, hit.chunk.document_id, hit.chunk.metadata["page"]) == ("report.pdf", "p2", 2)
    got = col.get_documents(["nile", "report.pdf"])
    assert [(d.source, d.text, d.metadata) for d in got] == [
        ("nile", NILE, {"kind": "geo"}),
        ("report.pdf", PARIS, {"page": 1}),
        ("report.pdf", BERLIN, {"page": 2}),
    ]
    # a source's documents are replaced together: page 2 gone
    col.add_documents([Document("p1", "report.pdf", PARIS, metadata={"page": 1})])
    assert [d.id for d in col.get_documents(["report.pdf"])] == ["p1"]


def test_a_long_text_is_split_and_rebuilt_with_its_offsets(col):
    paragraphs = [f"Paragraph {i} talks about topic number {i}. " * 12 for i in range(12)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    col.add_texts([text], ids=["long"])
    chunks = [c for batch in col.store.iter_chunks() for c in batch if c.source == "long"]
    assert len(chunks) > 1 and all(text[c.start : c.end] == c.text for c in chunks)
    (doc,) = col.get_documents(["long"])
    assert len(doc.text) == len(text)
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)
    assert doc.text.split() == text.split()


def test_documents_survive_reopening(home):
    with Collection.create("reopened", store_dir=home) as col:
        col.add_texts([NILE], metadatas=[{"n": 1}], ids=["nile"])
    with Collection.open("reopened", store_dir=home) as col:
        assert [(d.text, d.metadata) for d in col.get_documents(["nile"])] == [(NILE, {"n": 1})]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"texts": [PARIS], "metadatas": [{"chunk_index": 3}]}, "chunk_index"),
        ({"texts": [PARIS], "metadatas": [{"uri": "file:///x"}]}, "uri"),
        ({"texts": [PARIS, BERLIN], "ids": ["only-one"]}, "2 texts but 1 ids"),
        ({"texts": ["   "]}, "empty"),
        ({"texts": [PARIS], "ids": [""]}, "non-empty string"),
        ({"texts": [PARIS], "metadatas": [{"when": object()}]}, "JSON"),
        ({"texts": [3]}, "must be a string"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(col, kwargs, message):
    with pytest.raises(InputError, match=message):
        col.add_texts(**kwargs)
    assert col.store.count() == 0


def test_an_id_held_by_a_file_is_refused(col, tmp_path):
    (tmp_path / "notes.txt").write_text(PARIS, encoding="utf-8")
    col.ingest(tmp_path / "notes.txt")
    with pytest.raises(ConflictError, match="notes.txt"):
        col.add_texts([BERLIN], ids=["notes.txt"])
    assert col.search("Paris", top_k=1)[0].chunk.text == PARIS
