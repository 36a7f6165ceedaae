"""The filter language: parsing both forms, clear errors, and SQL == Python semantics."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.errors import FilterError
from ragkit.filters import And, Comparison, Not, Or, check_fields, parse_filter, to_sql

DOCS = [
    {"source": "a.md", "page": 1, "lang": "en", "draft": True, "score": 0.5},
    {"source": "b.md", "page": 2, "lang": "de", "draft": False},
    {"source": "c.pdf", "page": 3, "lang": "en", "score": 2.5},
    {"source": "d.txt", "lang": "fr"},
]


def matching(expr, docs=DOCS):
    flt = parse_filter(expr)
    return [d["source"] for d in docs if flt.matches(d)]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('lang == "en"', ["a.md", "c.pdf"]),
        ('lang != "en"', ["b.md", "d.txt"]),
        ("page >= 2", ["b.md", "c.pdf"]),
        ("1 < page <= 3", ["b.md", "c.pdf"]),
        ("2 > page", ["a.md"]),
        ('lang in ["de", "fr"]', ["b.md", "d.txt"]),
        ('lang not in ["de", "fr"]', ["a.md", "c.pdf"]),
        ("draft", ["a.md"]),
        ("not draft", ["b.md", "c.pdf", "d.txt"]),
        ("draft == false", ["b.md"]),
        ('page == 1 or lang == "fr"', ["a.md", "d.txt"]),
        ('not (lang == "en" and page > 1)', ["a.md", "b.md", "d.txt"]),
        ("score > 1", ["c.pdf"]),
        ("page < 10", ["a.md", "b.md", "c.pdf"]),  # a missing field never matches a comparison
    ],
)
def test_expression_form(expr, expected):
    assert matching(expr) == expected


def test_dict_form_matches_expression_form():
    as_dict = {"$and": [{"lang": {"$in": ["en", "de"]}}, {"page": {"$gte": 2}}]}
    assert parse_filter(as_dict) == parse_filter('lang in ["en", "de"] and page >= 2')
    assert matching({"source": "b.md"}) == ["b.md"]
    assert matching({"$not": {"lang": "en"}}) == ["b.md", "d.txt"]
    assert matching({"$or": [{"page": 1}, {"lang": {"$eq": "fr"}}]}) == ["a.md", "d.txt"]
    assert matching('{"page": {"$lt": 2}}') == ["a.md"]  # JSON text works too


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("page >", "cannot parse filter"),
        ("page == other", "one field and one literal"),
        ("len(page) > 2", "one field and one literal"),
        ("page + 1", "unsupported filter syntax"),
        ("page in 3", "needs a list"),
        ("page == [1, 2]", "needs a string, number or boolean"),
        ({"page": {"$like": "x"}}, "unknown operator '$like' on field 'page'"),
        ({"$nor": []}, "unknown filter operator"),
        ({"$and": []}, "non-empty list"),
        ("{not json", "not valid JSON"),
        (42, "must be a string or a dict"),
    ],
)
def test_errors_say_what_is_wrong(spec, message):
    with pytest.raises(FilterError, match=message.replace("$", r"\$").replace("(", r"\(")):
        parse_filter(spec)


def test_empty_filter_is_no_filter():
    assert parse_filter("") is None
    assert parse_filter(None) is None


def test_unknown_field_is_refused_with_the_known_ones():
    flt = parse_filter('langauge == "en" and page > 1')
    with pytest.raises(FilterError, match=r"'langauge' does not exist in collection 'docs'; known fields: lang, page"):
        check_fields(flt, {"lang", "page"}, "collection 'docs'")
    check_fields(parse_filter("page > 1"), {"lang", "page"}, "x")  # known fields pass


# -- SQL translation agrees with Python evaluation on random data -----------------

FIELDS = ["a", "b", "c"]
values = st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y", "z"]), st.booleans())
metadata = st.dictionaries(st.sampled_from(FIELDS), values, max_size=3)


def comparisons():
    scalar_ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    numeric = st.builds(Comparison, st.sampled_from(FIELDS), scalar_ops, st.integers(-3, 3))
    textual = st.builds(Comparison, st.sampled_from(FIELDS), st.sampled_from(["==", "!="]), st.sampled_from(["x", "y"]))
    boolean = st.builds(Comparison, st.sampled_from(FIELDS), st.just("=="), st.booleans())
    listed = st.builds(
        Comparison,
        st.sampled_from(FIELDS),
        st.sampled_from(["in", "not in"]),
        st.lists(st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y"])), min_size=1, max_size=3).map(tuple),
    )
    return st.one_of(numeric, textual, boolean, listed)


filters = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
        inner.map(Not),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(metadata, min_size=1, max_size=8), flt=filters)
def test_sql_translation_agrees_with_python(rows, flt):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (i INTEGER, metadata TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, json.dumps(r)) for i, r in enumerate(rows)])
    where, params = to_sql(flt)
    from_sql = {i for (i,) in conn.execute(f"SELECT i FROM t WHERE {where}", params)}
    from_python = {i for i, r in enumerate(rows) if flt.matches(r)}
    # SQLite orders mixed types (numbers < text) where Python refuses; compare only rows without such mixes
    comparable = {i for i, r in enumerate(rows) if not _mixed_order(flt, r)}
    assert from_sql & comparable == from_python & comparable


def _mixed_order(flt, row):
    if isinstance(flt, Comparison):
        if flt.field not in row or flt.op in ("==", "!=", "in", "not in"):
            return flt.op in ("==", "!=", "in", "not in") and _bool_int_mix(row.get(flt.field), flt.value)
        value, actual = flt.value, row[flt.field]
        return isinstance(actual, str) != isinstance(value, str)
    if isinstance(flt, Not):
        return _mixed_order(flt.item, row)
    return any(_mixed_order(item, row) for item in flt.items)


def _bool_int_mix(actual, value):
    # JSON true is 1 in SQLite and True == 1 in Python too, so only the 1/0 vs bool mix is ambiguous
    candidates = value if isinstance(value, tuple) else (value,)
    return any(isinstance(actual, bool) != isinstance(v, bool) for v in candidates)
