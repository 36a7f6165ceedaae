"""The BM25 keyword index on its own: ranking, stemming, filters, persistence, config."""

from __future__ import annotations

import pytest

from ragkit import registry
from ragkit.errors import ConfigError
from ragkit.filters import parse_filter
from ragkit.lexical import BM25Index
from ragkit.schema import Chunk

TEXTS = [
    "The cat sat on the mat.",
    "Dogs chase cats around the garden.",
    "The Denver Broncos won Super Bowl 50 at Levi's Stadium.",
    "Quantum physics describes nature at the smallest scales.",
    "A stadium in Santa Clara hosted the championship game.",
]


def chunks():
    return [
        Chunk(
            id=f"c{i}",
            document_id=f"d{i % 2}",
            source=f"s{i}.md",
            text=t,
            start=0,
            end=len(t),
            metadata={"n": i, "lang": "en" if i != 3 else "de"},
        )
        for i, t in enumerate(TEXTS)
    ]


@pytest.fixture
def index(tmp_path):
    ix = BM25Index(path=tmp_path / "lexical")
    assert ix.rebuild(iter([chunks()[:2], chunks()[2:]])) == 5
    return ix


def test_ranks_by_keywords_with_stemming(index):
    ((best, *_),) = index.search(["who won the super bowl"], 3)
    assert best[0] == "c2"
    cats = dict(index.search(["cat"], 5)[0])
    assert set(cats) == {"c0", "c1"}  # "cats" matches "cat" through the English stemmer


def test_queries_without_known_words_return_nothing(index):
    assert index.search(["zzzz qqqq", "the"], 3) == [[], []]  # unknown words, and a stop word only


def test_filter_ranks_only_matching_chunks(index):
    hits = index.search(["stadium game"], 5, parse_filter("n >= 3"))[0]
    assert [chunk_id for chunk_id, _ in hits] == ["c4"]
    by_source = index.search(["stadium"], 5, parse_filter('source == "s2.md"'))[0]
    assert [chunk_id for chunk_id, _ in by_source] == ["c2"]
    assert index.search(["stadium"], 5, parse_filter('lang == "fr"')) == [[]]


def test_survives_reopen_and_rebuild_replaces_atomically(index, tmp_path):
    reopened = BM25Index(path=tmp_path / "lexical")
    assert reopened.search(["quantum"], 1)[0][0][0] == "c3"
    reopened.rebuild(iter([chunks()[:1]]))
    assert BM25Index(path=tmp_path / "lexical").search(["quantum"], 1) == [[]]
    assert not (tmp_path / "lexical.tmp").exists() and not (tmp_path / "lexical.old").exists()


def test_empty_index_searches_to_nothing(tmp_path):
    ix = BM25Index(path=tmp_path / "empty")
    assert ix.search(["anything"], 3) == [[]]
    ix.rebuild(iter([]))
    assert ix.exists and ix.search(["anything"], 3) == [[]]


def test_config_round_trip_and_validation(tmp_path):
    ix = BM25Index(path=tmp_path / "x", k1=1.2, b=0.5, stemmer=None)
    config = ix.to_config()
    assert config == {"type": "bm25", "k1": 1.2, "b": 0.5, "method": "lucene", "stopwords": "en", "stemmer": None}
    rebuilt = registry.get("lexical", "bm25").from_config({**config, "path": tmp_path / "x"})
    assert rebuilt.to_config() == config
    with pytest.raises(ConfigError, match="method must be one of"):
        BM25Index(path=tmp_path, method="tfidf")
    with pytest.raises(ConfigError, match="unknown stemmer 'klingon'"):
        BM25Index(path=tmp_path, stemmer="klingon")
    with pytest.raises(ConfigError, match="0 <= b <= 1"):
        BM25Index(path=tmp_path, b=2)


@pytest.mark.parametrize("method", ["lucene", "bm25+"])
def test_incremental_updates_rank_exactly_like_a_full_rebuild(tmp_path, method):
    from ragkit.schema import SourceRecord

    growing = BM25Index(path=tmp_path / "growing", method=method)
    growing.add(chunks()[:2])
    growing.add(chunks()[2:])
    growing.add([Chunk(id="c5", document_id="d5", source="s5.md", text="Zebras graze", start=0, end=12)])
    growing.delete_sources(["s5.md"])  # its words stay in the vocabulary, not in the scores
    growing.commit_sources([SourceRecord("s3.md", "h", 1, 0.0, [], 0, [])])  # s3.md now has no chunks
    fresh = BM25Index(path=tmp_path / "fresh", method=method)
    fresh.rebuild(iter([[c for c in chunks() if c.source != "s3.md"]]))
    queries = ["stadium game", "cats and dogs", "zebras", "quantum"]
    got, want = growing.search(queries, 5), fresh.search(queries, 5)
    assert [[i for i, _ in hits] for hits in got] == [[i for i, _ in hits] for hits in want]
    assert [s for hits in got for _, s in hits] == pytest.approx([s for hits in want for _, s in hits])
    assert growing.count() == fresh.count() == 4


def test_hits_carry_the_chunks_the_index_keeps(index, tmp_path):
    [hits] = BM25Index(path=tmp_path / "lexical").search_hits(["super bowl stadium"], 2)
    assert hits[0].chunk.to_dict() == chunks()[2].to_dict() and hits[0].origin == "lexical"
    assert index.metadata_fields() == {"n", "lang", "source", "document_id"}


def test_a_searching_process_sees_another_writers_changes(index, tmp_path):
    reader = BM25Index(path=tmp_path / "lexical")
    assert reader.search(["zebras"], 1) == [[]]
    index.add([Chunk(id="z", document_id="dz", source="z.md", text="Zebras graze", start=0, end=12)])
    assert reader.search(["zebras"], 1)[0][0][0] == "z"
