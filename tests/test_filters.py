"""The filter language: parsing both forms, clear errors, and SQL == Python semantics."""

from __future__ import annotations

import pytest

from ragkit.errors import FilterError
from ragkit.filters import check_fields, parse_filter

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


def nested_not(inner, times):
    for _ in range(times):
        inner = {"$not": inner}
    return inner


@pytest.mark.parametrize(
    "spec",
    [
        "not " * 1000 + "draft",
        "page == " + "-" * 3000 + "1",
        "a" + ".a" * 1500 + " == 1",
        "(" * 40 + "not " * 40 + "draft" + ")" * 40,
        '{"$not": ' * 900 + '{"page": 1}' + "}" * 900,
        nested_not({"page": 1}, 40),
    ],
)
def test_filters_nested_past_the_limit_are_refused_not_a_recursion_error(spec):
    with pytest.raises(FilterError, match="nests more than 32 levels"):
        parse_filter(spec)


def test_nesting_within_the_limit_and_long_flat_filters_still_work():
    assert matching("not " * 30 + "draft") == ["a.md"]  # 30 negations: an even count keeps "draft"
    flat = " or ".join(f"page == {n}" for n in range(1, 400))
    assert matching(flat) == ["a.md", "b.md", "c.pdf"]
    assert matching("page == -1") == []


def test_filter_text_over_the_length_limit_is_refused():
    with pytest.raises(FilterError, match="characters long; the limit is 10,000"):
        parse_filter("page == 1 or " * 2000 + "page == 2")


def test_a_single_equals_sign_gets_a_hint():
    with pytest.raises(FilterError, match="compare with =="):
        parse_filter('lang = "en"')


def test_a_comparison_that_can_never_match_its_fields_kind_is_refused():
    from ragkit.filters import check_kinds, field_kinds

    kinds = field_kinds(DOCS)
    with pytest.raises(FilterError, match=r"field 'page', which holds numbers in docs, with \"2\" \(string\)") as bad:
        check_kinds(parse_filter('page > "2"'), kinds, "docs")
    assert "write the number without quotes: page > 2" in str(bad.value)
    with pytest.raises(FilterError, match=r"quote it: lang == \"1\""):
        check_kinds(parse_filter("lang == 1"), kinds, "docs")
    with pytest.raises(FilterError, match="holds strings"):
        check_kinds(parse_filter('lang in ["en", 2]'), kinds, "docs")
    # the same kind, numbers against booleans, unknown fields and mixed fields are left alone
    for ok in ("page > 2", "score >= 1", "draft == true", 'lang in ["en", "de"]', "nope == 1", "page == true"):
        check_kinds(parse_filter(ok), kinds, "docs")
    check_kinds(parse_filter('mixed == "x"'), field_kinds([{"mixed": 1}, {"mixed": "a"}]), "docs")


FOLDERS = [
    {"source": "hr/a.docx", "page": 1},
    {"source": "hr/sub/b.md", "page": 2},
    {"source": "hrx/c.md", "page": 3},
    {"source": "it/hr/d.md"},
    {"page": 5},
]


def test_a_prefix_filter_selects_a_folder_in_both_forms():
    expression = parse_filter('source.startswith("hr/")')
    assert expression == parse_filter({"source": {"$prefix": "hr/"}}) == parse_filter('{"source": {"$prefix": "hr/"}}')
    assert [d.get("source") for d in FOLDERS if expression.matches(d)] == ["hr/a.docx", "hr/sub/b.md"]
    negated = parse_filter('not source.startswith("hr/") and page > 0')
    assert [d.get("page") for d in FOLDERS if negated.matches(d)] == [3, 5]
    nested = parse_filter('meta.path.startswith("x")')
    assert nested.field == "meta.path" and nested.matches({"meta.path": "xy"}) and not nested.matches({"meta.path": 1})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("source.startswith(1)", "prefix needs a string"),
        ({"source": {"$prefix": ["a"]}}, "prefix needs a string"),
        ('source.endswith("x")', 'the only call a filter may hold is field.startswith("prefix")'),
        ('startswith("x")', "the only call"),
        ('source.startswith("a", 2)', "startswith takes exactly one string"),
    ],
)
def test_bad_prefix_filters_say_what_is_wrong(spec, message):
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_filter(spec)


def test_a_prefix_on_a_field_that_holds_no_strings_is_refused_with_its_kind():
    from ragkit.filters import check_kinds, field_kinds

    with pytest.raises(FilterError, match=r"field 'page' holds numbers in docs: it could never match"):
        check_kinds(parse_filter('page.startswith("1")'), field_kinds(DOCS), "docs")
    check_kinds(parse_filter('source.startswith("a")'), field_kinds(DOCS), "docs")


def test_prefix_filters_keep_the_depth_and_length_bounds():
    deep = "not " * 100 + 'source.startswith("a")'
    with pytest.raises(FilterError, match="nests more than"):
        parse_filter(deep)
    with pytest.raises(FilterError, match="nests more than"):
        parse_filter("a" + ".a" * 100 + '.startswith("x")')
