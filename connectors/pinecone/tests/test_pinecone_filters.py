"""ragkit filters translated to Pinecone's filter JSON, and the FAKE Pinecone's reading of that language."""

from __future__ import annotations

import pytest

from ragkit.errors import FilterError
from ragkit.filters import parse_filter
from ragkit.testing.vector_store_conformance import FILTER_CASES, filter_corpus, filter_view

INSTALL = "pip install -c constraints.txt -e connectors/pinecone"
pytest.importorskip("pinecone", reason=f"needs the official pinecone client: {INSTALL}")
pytest.importorskip("ragkit_pinecone", reason=f"needs the connector installed: {INSTALL}")

from ragkit_pinecone import fake_rules  # noqa: E402
from ragkit_pinecone.fake_rules import FakeRequestError  # noqa: E402
from ragkit_pinecone.filters import to_pinecone_filter  # noqa: E402
from ragkit_pinecone.records import filterable  # noqa: E402

EXTRA_CASES = [
    "page in []",
    "not (page in [])",
    "page not in []",
    "draft in [true]",
    'lang in ["en", true]',
    'not (lang in ["de", false])',
    "nonexistent != 1",
    "not (nonexistent in [1, 2])",
    'not (not (lang == "en" or page > 3) and draft)',
]


def translated(flt: str | dict) -> dict:
    parsed = parse_filter(flt)
    assert parsed is not None
    return to_pinecone_filter(parsed)


def pinecone_view(metadata: dict) -> dict:
    """What the store writes as a chunk's Pinecone metadata fields (the filterable part)."""
    return {key: value for key, value in metadata.items() if filterable(key, value)}


@pytest.mark.parametrize("flt", [*FILTER_CASES, *EXTRA_CASES], ids=str)
def test_translation_selects_what_ragkit_selects(flt: str | dict) -> None:
    """Evaluated by the fake's Pinecone semantics, each translation accepts exactly the chunks ragkit does."""
    parsed = parse_filter(flt)
    assert parsed is not None
    pinecone = fake_rules.check_filter(to_pinecone_filter(parsed))  # also valid by the service's rules
    chunks, _ = filter_corpus(60, 4)
    for chunk in chunks:
        view = filter_view(chunk)
        assert fake_rules.matches(pinecone, pinecone_view(view)) == parsed.matches(view), (chunk.id, pinecone)


def test_a_comparison_requires_the_field_and_its_negation_admits_records_without_it() -> None:
    assert translated("page >= 2") == {"page": {"$gte": 2}}  # $gte never matches a record without the field
    assert translated("page != 2") == {"$and": [{"page": {"$exists": True}}, {"page": {"$ne": 2}}]}
    assert translated("not (page == 3)") == {"$or": [{"page": {"$exists": False}}, {"page": {"$ne": 3}}]}
    assert translated('lang == "en" and not draft') == {
        "$and": [
            {"lang": {"$eq": "en"}},
            {"$or": [{"draft": {"$exists": False}}, {"draft": {"$ne": True}}]},
        ]
    }


def test_not_is_pushed_down_by_de_morgan() -> None:
    """Pinecone has no $not: not (a or b) becomes (not a) and (not b)."""
    assert translated('not (lang == "en" or page < 2)') == {
        "$and": [
            {"$or": [{"lang": {"$exists": False}}, {"lang": {"$ne": "en"}}]},
            {"$or": [{"page": {"$exists": False}}, {"page": {"$gte": 2}}]},
        ]
    }


@pytest.mark.parametrize(
    ("flt", "words"),
    [
        ('source.startswith("hr/")', "no prefix operator"),
        ({"source": {"$prefix": "hr/"}}, "no prefix operator"),
        ('lang < "m"', "orders only numbers"),
        ("not (draft >= true)", "orders only numbers"),
    ],
)
def test_what_pinecone_cannot_express_is_refused_not_dropped(flt: str | dict, words: str) -> None:
    with pytest.raises(FilterError, match=words):
        translated(flt)


def test_the_fake_reads_lists_missing_fields_and_types_as_pinecone_does() -> None:
    record = {"tags": ["a", "b"], "year": 2020, "flag": True, "name": "x"}
    assert fake_rules.matches({"tags": "a"}, record)  # an element of a list matches $eq
    assert fake_rules.matches({"tags": {"$in": ["z", "b"]}}, record)
    assert not fake_rules.matches({"tags": {"$nin": ["b"]}}, record)
    assert fake_rules.matches({"year": {"$eq": 2020.0}}, record)  # numbers by value
    assert not fake_rules.matches({"flag": 1}, record)  # a boolean is not a number
    assert not fake_rules.matches({"name": {"$gt": 1}}, record)  # only numbers order
    assert fake_rules.matches({"missing": {"$ne": 1}}, record)  # the service's reading of $ne on a missing field
    assert fake_rules.matches({"missing": {"$nin": [1]}}, record)
    assert not fake_rules.matches({"missing": {"$in": [1]}}, record)
    assert fake_rules.matches({"missing": {"$exists": False}, "year": {"$gte": 2000, "$lt": 2021}}, record)
    assert fake_rules.matches({"$or": [{"name": "y"}, {"$and": [{"flag": True}, {"year": 2020}]}]}, record)


@pytest.mark.parametrize(
    "flt",
    [
        {"name": {"$regex": "x"}},
        {"$not": {"name": "x"}},
        {"year": {"$gt": "2020"}},
        {"name": {"$in": "x"}},
        {"name": {"$exists": 1}},
        {"$and": []},
        {},
    ],
    ids=str,
)
def test_the_fake_refuses_invalid_filters_with_a_400(flt: dict) -> None:
    with pytest.raises(FakeRequestError) as info:
        fake_rules.check_filter(flt)
    assert info.value.status == 400
