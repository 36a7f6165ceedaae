"""In-memory metadata columns select exactly the rows Filter.matches selects."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.filters import And, Comparison, Not, Or, parse_filter
from ragkit.stores.columns import MetadataColumns

FIELDS = ["a", "b", "c"]
values = st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y", "z"]), st.booleans(), st.floats(-3, 3))
rows = st.dictionaries(st.sampled_from(FIELDS), values, max_size=3)


def comparisons():
    ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    scalar = st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y"]), st.booleans())
    listed = st.lists(scalar, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        st.builds(Comparison, st.sampled_from(FIELDS), ops, scalar),
        st.builds(Comparison, st.sampled_from(FIELDS), st.sampled_from(["in", "not in"]), listed),
    )


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
@given(data=st.lists(rows, min_size=1, max_size=12), flt=filters, deleted=st.sets(st.integers(0, 11)))
def test_columns_agree_with_python_evaluation(data, flt, deleted):
    columns = MetadataColumns()
    rowids = [10 + 3 * i for i in range(len(data))]  # increasing, with gaps, like SQLite row ids
    half = len(data) // 2
    columns.append(rowids[:half], data[:half])  # two appends, as successive upserts do
    columns.append(rowids[half:], data[half:])
    columns.remove(rowids[i] for i in deleted if i < len(data))
    expected = [r for i, (r, row) in enumerate(zip(rowids, data, strict=True)) if i not in deleted and flt.matches(row)]
    assert columns.matching_rowids(flt).tolist() == expected


def test_true_and_one_stay_distinct_and_lists_are_values():
    columns = MetadataColumns()
    columns.append([1, 2, 3, 4], [{"v": True}, {"v": 1}, {"v": ["a", "b"]}, {}])
    assert columns.matching_rowids(parse_filter("v == true")).tolist() == [1, 2]  # True == 1, as in Python
    assert columns.matching_rowids(parse_filter("v != 1")).tolist() == [3]
    assert columns.matching_rowids(parse_filter("not v == 1")).tolist() == [3, 4]
    assert len(columns.columns["v"].values) == 3


def test_grows_past_its_first_capacity():
    columns = MetadataColumns()
    n = 5000
    columns.append(range(n), ({"k": i % 7} for i in range(n)))
    columns.remove(range(0, n, 2))
    found = columns.matching_rowids(parse_filter("k == 3"))
    assert found.tolist() == [i for i in range(n) if i % 7 == 3 and i % 2 == 1]
    assert found.dtype == np.int64
