"""``ragkit.options``: the one validator of numeric component options, with the messages users already know.

The exact messages below are the ones the private copies it replaced wrote (the OpenAI and TGI
connectors, the context shapers, the splitters), so the switch changed no error a user sees.
"""

from __future__ import annotations

import re

import pytest

from ragkit.errors import ConfigError
from ragkit.options import check_int, check_number
from ragkit.registry import build


def _raises(message: str) -> pytest.RaisesContext[ConfigError]:
    return pytest.raises(ConfigError, match=f"^{re.escape(message)}$")


def test_good_values_come_back_unchanged() -> None:
    assert check_int("generator", "max_tokens", 5, 1) == 5
    assert check_int("generator", "max_retries", 0, 0) == 0
    assert check_int("x", "n", 10**9) == 10**9  # no bounds: any integer
    assert check_number("generator", "timeout", 0.5, 0.0, strict=True) == 0.5
    assert check_number("generator", "temperature", 0, 0.0) == 0
    assert check_number("x", "p", 1.0, 0.0, 1.0) == 1.0  # both bounds are inclusive unless strict


@pytest.mark.parametrize("value", [True, False, 1.0, "3", None, [1]])
def test_only_a_real_int_is_an_integer(value: object) -> None:
    with _raises(f"generator option 'max_tokens': expected an integer of at least 0, got {value!r}"):
        check_int("generator", "max_tokens", value, 0)


@pytest.mark.parametrize("value", [True, "0.5", None, float, complex(1, 0)])
def test_only_an_int_or_float_is_a_number(value: object) -> None:
    with _raises(f"generator option 'temperature': expected a number at least 0, got {value!r}"):
        check_number("generator", "temperature", value, 0.0)


def test_the_expected_wording_of_the_openai_and_tgi_connectors() -> None:
    with _raises("generator option 'max_tokens': expected an integer of at least 1, got 0"):
        check_int("generator", "max_tokens", 0, 1)
    with _raises("embedder option 'dimension': expected an integer of at least 1, got 'big'"):
        check_int("embedder", "dimension", "big", 1)
    with _raises("generator option 'timeout': expected a number more than 0, got 0"):
        check_number("generator", "timeout", 0, 0.0, strict=True)
    with _raises("generator option 'backoff': expected a number at least 0, got -0.5"):
        check_number("generator", "backoff", -0.5, 0.0)


def test_the_must_wording_of_the_shapers_and_splitters() -> None:
    owner = "context shaper 'dedupe'"
    with _raises("context shaper 'dedupe': shingle must be an integer, got 1.5"):
        check_int(owner, "shingle", 1.5, 1, wording="must")
    with _raises("context shaper 'dedupe': shingle must be at least 1, got 0"):
        check_int(owner, "shingle", 0, 1, wording="must")
    with _raises("context shaper 'parent-document': max_chars must be an integer, got 'big'"):
        check_int("context shaper 'parent-document'", "max_chars", "big", 1, wording="must")
    with _raises("splitter 'recursive': chunk_size must be >= 1, got -5"):
        check_int("splitter 'recursive'", "chunk_size", -5, 1, wording="must", symbols=True)
    with _raises("splitter 'recursive': chunk_size must be an integer, got True"):
        check_int("splitter 'recursive'", "chunk_size", True, 1, wording="must", symbols=True)


def test_upper_bounds_and_strict_lower_bounds_in_words_and_symbols() -> None:
    with _raises("reranker option 'top_n': expected an integer of at least 1 and at most 10, got 11"):
        check_int("reranker", "top_n", 11, 1, 10)
    with _raises("x option 'n': expected an integer of at most 3, got 4"):
        check_int("x", "n", 4, maximum=3)
    with _raises("x: p must be > 0 and <= 1, got 1.5"):
        check_number("x", "p", 1.5, 0.0, 1.0, strict=True, wording="must", symbols=True)
    with _raises("x: p must be more than 0 and at most 1, got 0.0"):
        check_number("x", "p", 0.0, 0.0, 1.0, strict=True, wording="must")
    with _raises("x option 'n': expected an integer of at least 1000000, got 3"):  # an int bound is not 1e+06
        check_int("x", "n", 3, 1_000_000)
    with _raises("x option 'f': expected a number at least 0.25, got 0.1"):
        check_number("x", "f", 0.1, 0.25)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "recursive", "chunk_overlap": -1}, "splitter 'recursive': chunk_overlap must be >= 0, got -1"),
        ({"type": "sentence", "chunk_size": "9"}, "splitter 'sentence': chunk_size must be an integer, got '9'"),
    ],
)
def test_components_built_from_config_report_through_it(config: dict[str, object], message: str) -> None:
    with _raises(message):
        build("splitter", config)
