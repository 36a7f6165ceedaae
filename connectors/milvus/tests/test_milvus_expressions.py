"""Translation of ragkit filters into Milvus expressions (pure strings, no Milvus needed)."""

from __future__ import annotations

import pytest
from ragkit_milvus.expressions import literal, quote, to_milvus_expr

from ragkit.errors import FilterError
from ragkit.filters import Comparison, parse_filter


def expr(spec):
    return to_milvus_expr(parse_filter(spec))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("page == 2", '(exists metadata["page"] and metadata["page"] == 2)'),
        ("page != 2", '(exists metadata["page"] and metadata["page"] != 2)'),
        ("page < 2", '(exists metadata["page"] and metadata["page"] < 2)'),
        ("page <= 2", '(exists metadata["page"] and metadata["page"] <= 2)'),
        ("page > 2.5", '(exists metadata["page"] and metadata["page"] > 2.5)'),
        ("page >= -3", '(exists metadata["page"] and metadata["page"] >= -3)'),
        ("draft", '(exists metadata["draft"] and metadata["draft"] == true)'),
        ("draft == false", '(exists metadata["draft"] and metadata["draft"] == false)'),
        ('lang == "en"', '(exists metadata["lang"] and metadata["lang"] == "en")'),
        (
            'lang in ["en", "de"]',
            '(exists metadata["lang"] and (metadata["lang"] == "en" or metadata["lang"] == "de"))',
        ),
        (
            "page not in [1, 2]",
            '(exists metadata["page"] and metadata["page"] != 1 and metadata["page"] != 2)',
        ),
        ('source == "a.md"', 'source == "a.md"'),
        ('source != "a.md"', 'source != "a.md"'),
        ('document_id in ["d1", "d2"]', 'document_id in ["d1", "d2"]'),
        ('source not in ["a.md"]', 'source not in ["a.md"]'),
        (
            'not (page == 1 or source == "a.md")',
            '(not ((exists metadata["page"] and metadata["page"] == 1) or source == "a.md"))',
        ),
        (
            "1 <= page < 3",
            '((exists metadata["page"] and metadata["page"] >= 1) and '
            '(exists metadata["page"] and metadata["page"] < 3))',
        ),
        ("a.b == 1", '(exists metadata["a.b"] and metadata["a.b"] == 1)'),
    ],
)
def test_each_operator(spec, expected):
    assert expr(spec) == expected


def test_nested_and_or_not_keep_their_grouping():
    got = expr('(lang == "de" or draft) and not (page > 5)')
    assert got == (
        '(((exists metadata["lang"] and metadata["lang"] == "de") or '
        '(exists metadata["draft"] and metadata["draft"] == true)) and '
        '(not (exists metadata["page"] and metadata["page"] > 5)))'
    )


def test_dict_form_translates_like_the_expression_form():
    assert expr({"$and": [{"lang": {"$in": ["en"]}}, {"page": {"$gte": 2}}]}) == expr('lang in ["en"] and page >= 2')


def test_empty_in_lists():
    assert to_milvus_expr(Comparison("page", "in", ())) == "false"
    assert to_milvus_expr(Comparison("page", "not in", ())) == '(exists metadata["page"])'
    assert to_milvus_expr(Comparison("source", "in", ())) == "source in []"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("it's", '"it\'s"'),
        ("two\nlines\r\tend", r'"two\nlines\r\tend"'),
        ('\\"', r'"\\\""'),
        ("ünïcode 漢字", '"ünïcode 漢字"'),
        ('x" or id != "', r'"x\" or id != \""'),
    ],
)
def test_strings_are_escaped(value, expected):
    assert quote(value) == expected


def test_field_names_are_escaped_too():
    flt = Comparison('we"ird\\key', "==", 1)
    assert to_milvus_expr(flt) == r'(exists metadata["we\"ird\\key"] and metadata["we\"ird\\key"] == 1)'


def test_literals():
    assert literal(True) == "true"
    assert literal(False) == "false"
    assert literal(7) == "7"
    assert literal(2**60 + 1) == "1152921504606846977"
    assert literal(0.1) == "0.1"
    assert literal(1e-300) == "1e-300"
    for bad in (float("inf"), float("nan")):
        with pytest.raises(FilterError, match="finite"):
            literal(bad)


def test_other_json_field_and_scalar_fields():
    flt = parse_filter('page == 1 and source == "s"')
    assert to_milvus_expr(flt, json_field="meta", scalar_fields={"source": "src"}) == (
        '((exists meta["page"] and meta["page"] == 1) and src == "s")'
    )


def test_a_prefix_becomes_like_with_its_wildcards_escaped():
    assert expr('source.startswith("hr/")') == 'source like "hr/%"'
    assert expr({"lang": {"$prefix": "e"}}) == (
        '(exists metadata["lang"] and (metadata["lang"] >= "e" and metadata["lang"] < "f"))'
    )
    assert expr('source.startswith("50%_a")') == r'source like "50\\%\\_a%"'
    # a backslash: a string range instead of a pattern Milvus may read either way
    assert expr('source.startswith("a\\\\b")') == r'(source >= "a\\b" and source < "a\\c")'
    assert expr('not source.startswith("hr/")') == '(not source like "hr/%")'
