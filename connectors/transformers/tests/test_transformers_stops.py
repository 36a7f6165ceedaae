"""Stop strings on streamed text, without a model: however the text is split, the answer ends before the stop."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ragkit_transformers.stops import StopScanner, find_stop, held_back, normalize_stops

from ragkit.errors import InputError


def scan(pieces: list[str], stops: list[str]) -> tuple[list[str], bool]:
    scanner = StopScanner(stops)
    out = []
    for piece in pieces:
        text, stopped = scanner.feed(piece)
        out.append(text)
        if stopped:
            return out, True
    out.append(scanner.flush())
    return out, False


def expected(text: str, stops: list[str]) -> str:
    index = find_stop(text, stops)
    return text if index is None else text[:index]


def test_normalize_stops():
    assert normalize_stops(None) == ()
    assert normalize_stops("###") == ("###",)
    assert normalize_stops(["a", "", "b", "a"]) == ("a", "b")
    with pytest.raises(InputError, match="'stop'"):
        normalize_stops([1])  # type: ignore[list-item]


def test_find_stop_takes_the_earliest():
    assert find_stop("abc END x STOP", ["STOP", "END"]) == 4
    assert find_stop("nothing", ["STOP"]) is None
    assert find_stop("anything", []) is None


def test_held_back_is_the_longest_possible_start_of_a_stop():
    assert held_back("Hello #", ["###"]) == 1
    assert held_back("Hello ##", ["###"]) == 2
    assert held_back("Hello", ["###"]) == 0
    assert held_back("ab", ["abc", "bx"]) == 2
    assert held_back("", ["abc"]) == 0


def test_a_stop_split_across_pieces_is_cut_and_nothing_of_it_shows():
    out, stopped = scan(["The answer is 18", "89, and", " more"], ["1889"])
    assert stopped
    assert "".join(out) == "The answer is "
    assert out[0] == "The answer is "  # "18" was held back until it turned out to be the stop


def test_a_false_start_is_released():
    out, stopped = scan(["year 18", "75 and 1889"], ["1889"])
    assert stopped
    assert out == ["year ", "18" + "75 and "]


def test_no_stops_passes_everything_through():
    assert scan(["a", "b"], []) == (["a", "b", ""], False)


def test_held_back_text_comes_out_at_the_end():
    out, stopped = scan(["ends with ##"], ["###"])
    assert not stopped
    assert out == ["ends with ", "##"]


def test_after_a_stop_nothing_more_comes_out():
    scanner = StopScanner(["x"])
    assert scanner.feed("abxcd") == ("ab", True)
    assert scanner.feed("more") == ("", True)
    assert scanner.flush() == ""


def first_completed_stop(text: str, stops: list[str]) -> int | None:
    """Character by character: where the stop that completes first begins (the longest, on a tie)."""
    for end in range(1, len(text) + 1):
        starts = [end - len(s) for s in stops if text[:end].endswith(s)]
        if starts:
            return min(starts)
    return None


TEXTS = st.text(alphabet="ab#\n ", max_size=40)
STOPS = st.lists(st.text(alphabet="ab#\n", min_size=1, max_size=4), max_size=3)


@given(text=TEXTS, stops=STOPS)
def test_one_character_at_a_time_stops_where_a_stop_first_completes(text, stops):
    out, stopped = scan(list(text), stops)
    cut = first_completed_stop(text, stops)
    assert "".join(out) == (text if cut is None else text[:cut])
    assert stopped == (cut is not None)


@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=8), stops=STOPS)
def test_any_split_gives_a_prefix_that_ends_where_a_stop_begins(text, cuts, stops):
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    out, stopped = scan(pieces, stops)
    answer = "".join(out)
    assert text.startswith(answer)
    assert find_stop(answer, stops) is None  # no stop string shows
    if stopped:
        assert any(text[len(answer) :].startswith(s) for s in stops)
    else:
        assert answer == text
        assert find_stop(text, stops) is None
    if len(pieces) <= 1:  # the whole text at once: cut at the earliest stop
        assert answer == expected(text, stops)


def test_overlapping_stops_follow_the_order_the_text_arrives_in():
    # "a" completes before "#aa" can: a model would have stopped there
    assert scan(["#a", "a"], ["a", "#aa"]) == (["#"], True)
    # all at once, "#aa" begins first
    assert scan(["#aa"], ["a", "#aa"]) == ([""], True)
