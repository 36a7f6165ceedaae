"""ragkit filters -> Chroma ``where``: the translation, its refusals, and edge cases run on a real embedded Chroma."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("chromadb") is None or importlib.util.find_spec("ragkit_chroma") is None:
    pytest.skip(
        "ragkit-chroma or chromadb is not installed: pip install -c constraints.txt -e connectors/chroma",
        allow_module_level=True,
    )

import numpy as np
from ragkit_chroma import ChromaStore, to_chroma_where
from ragkit_chroma.where import FALSE, KEYS, NUMBERS, TRUE

from ragkit.errors import FilterError, InputError
from ragkit.filters import And, Comparison, Not, Or, parse_filter
from ragkit.testing.vector_store_conformance import expected_filter_ids, make_chunk, unit_vectors


def where(text: str) -> dict:
    parsed = parse_filter(text)
    assert parsed is not None
    return to_chroma_where(parsed)


def test_equality_on_metadata_and_on_chunk_fields():
    assert where('lang == "en"') == {"m:lang": {"$eq": "en"}}
    assert where('source == "a.md"') == {"source": {"$eq": "a.md"}}
    assert where('document_id in ["d1", "d2"]') == {"document_id": {"$in": ["d1", "d2"]}}


def test_not_equal_needs_the_key_present_but_its_negation_does_not():
    # Chroma's $ne matches chunks without the key; ragkit's != does not
    assert where("page != 3") == {"$and": [{KEYS: {"$contains": "page"}}, {"m:page": {"$ne": 3}}]}
    assert where("not (page == 3)") == {"m:page": {"$ne": 3}}
    assert where("not (page != 3)") == {"$or": [{KEYS: {"$not_contains": "page"}}, {"m:page": {"$eq": 3}}]}


def test_not_is_pushed_down_with_de_morgan():
    assert where('not (lang == "en" or page == 3)') == {"$and": [{"m:lang": {"$ne": "en"}}, {"m:page": {"$ne": 3}}]}
    assert where('not (lang == "en" and page > 5)') == {
        "$or": [{"m:lang": {"$ne": "en"}}, {"$or": [{NUMBERS: {"$not_contains": "page"}}, {"m:page": {"$lte": 5}}]}]
    }
    assert where("not not (page > 1)") == {"m:page": {"$gt": 1}}


def test_booleans_meet_numbers_as_python_compares_them():
    # True == 1 == 1.0 and False == 0 in Python (and so in Filter.matches); Chroma keeps booleans apart
    assert where("draft") == {"$or": [{"m:draft": {"$eq": True}}, {"m:draft": {"$eq": 1}}]}
    assert where("n == 0") == {"$or": [{"m:n": {"$eq": 0}}, {"m:n": {"$eq": False}}]}
    assert where("n > 0") == {"$or": [{"m:n": {"$gt": 0}}, {"m:n": {"$eq": True}}]}
    assert where("not (n < 1)") == {
        "$and": [{"$or": [{NUMBERS: {"$not_contains": "n"}}, {"m:n": {"$gte": 1}}]}, {"m:n": {"$ne": False}}]
    }


def test_in_with_values_of_several_types_is_split_by_type():
    # Chroma wants one type per $in list
    assert where('tag in [2, "one", 3]') == {"$or": [{"m:tag": {"$in": [2, 3]}}, {"m:tag": {"$eq": "one"}}]}
    assert where('tag not in [2, "one"]') == {
        "$and": [{KEYS: {"$contains": "tag"}}, {"$and": [{"m:tag": {"$ne": 2}}, {"m:tag": {"$ne": "one"}}]}]
    }


def test_empty_lists_and_empty_connectives():
    assert to_chroma_where(Comparison("tag", "in", ())) == FALSE
    assert to_chroma_where(Not(Comparison("tag", "not in", ()))) == {KEYS: {"$not_contains": "tag"}}
    assert to_chroma_where(Not(Comparison("tag", "in", ()))) == TRUE
    assert to_chroma_where(And(())) == TRUE
    assert to_chroma_where(Or(())) == FALSE


@pytest.mark.parametrize(
    ("flt", "words"),
    [
        ('source.startswith("hr/")', ["startswith", "source", "prefix"]),
        ({"title": {"$prefix": "Intro"}}, ["startswith", "title", "prefix"]),
        ('lang > "de"', ["'>'", "lang", "numbers only"]),
        ('not (name <= "m")', ["'<='", "name", "numbers only"]),
        ("draft < true", ["'<'", "draft", "bool"]),
        ("page == 1e999", ["finite"]),
    ],
)
def test_what_chroma_cannot_express_is_refused_naming_operator_and_field(flt, words):
    parsed = parse_filter(flt)
    assert parsed is not None
    with pytest.raises(FilterError) as info:
        to_chroma_where(parsed)
    assert isinstance(info.value, InputError)
    for word in words:
        assert word in str(info.value)


def test_a_refused_filter_fails_the_search_rather_than_being_dropped(tmp_path):
    store = ChromaStore(path=tmp_path, dimension=4, name="refuse")
    try:
        store.upsert([make_chunk("a", source="hr/a.md")], unit_vectors(1, 4, 1))
        with pytest.raises(FilterError, match="startswith"):
            store.search(unit_vectors(1, 4, 2), top_k=5, filter=parse_filter('source.startswith("hr/")'))
    finally:
        store.close()


# Edge cases beyond the conformance suite, each checked against Filter.matches on a real embedded Chroma:
# values that are not stored flat (lists, objects, null) still count as present keys.
EDGE_CHUNKS = [
    make_chunk("n1", metadata={"tag": 1, "kind": "x", "opt": None, "labels": ["a", "b"]}),
    make_chunk("n2", metadata={"tag": "one", "kind": "y", "nested": {"k": 1}}),
    make_chunk("n3", metadata={"tag": 2.5}),
    make_chunk("n4", metadata={}),
    make_chunk("n5", metadata={"kind": "x", "a.b": "dotted"}),
    make_chunk("b1", metadata={"flag": True, "num": 1}),
    make_chunk("b2", metadata={"flag": False, "num": 0.0}),
    make_chunk("b3", metadata={"flag": 1.0, "num": True}),
    make_chunk("b4", metadata={"flag": "yes", "num": 2}),
    make_chunk("i1", metadata={"num": 1, "big": 2**60 + 1}),  # Chroma truncates 1.5 against an int it holds
    make_chunk("i2", metadata={"num": 1.5, "big": 2**60}),
]
EDGE_FILTERS = [
    'tag in [1, "one"]',
    'tag not in [1, "one"]',
    'not (tag in [1, "one"])',
    "tag == 2.5",
    "tag != 1",
    "opt != 3",
    "opt == 3",
    "not (opt != 3)",
    'labels != "a"',
    'labels == "a"',
    'labels not in ["a"]',
    "nested != 1",
    'not (kind == "x")',
    'kind != "x"',
    "not (tag >= 2)",
    {"a.b": "dotted"},
    {"$not": {"a.b": {"$ne": "dotted"}}},
    {"kind": {"$in": []}},
    {"kind": {"$nin": []}},
    {"$not": {"kind": {"$nin": []}}},
    "flag",
    "not flag",
    "flag == 1",
    "flag != 1",
    "flag in [0, 2]",
    "flag not in [1]",
    "num == true",
    "num != false",
    "num > 0",
    "num >= 1",
    "not (num > 0)",
    "not (num < 1.5)",
    "not (flag <= 0)",
    "flag < 1 or num > 1",
    "num == 1.5",
    "num >= 1.5",
    "num < 1.5",
    "num <= 1",
    "num in [1.5, 7]",
    f"big == {2**60 + 1}",
    f"big > {2**60}",
]


@pytest.fixture(scope="module")
def edge_store(tmp_path_factory):
    store = ChromaStore(path=tmp_path_factory.mktemp("edges"), dimension=4, name="edges")
    store.upsert(EDGE_CHUNKS, unit_vectors(len(EDGE_CHUNKS), 4, 3))
    yield store
    store.close()


@pytest.mark.parametrize("flt", EDGE_FILTERS, ids=str)
def test_edge_cases_match_the_reference_semantics(edge_store, flt):
    parsed = parse_filter(flt)
    [hits] = edge_store.search(np.ones((1, 4), dtype=np.float32), top_k=50, filter=parsed)
    assert {hit.chunk.id for hit in hits} == expected_filter_ids(EDGE_CHUNKS, flt)
