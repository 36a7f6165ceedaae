"""The safe calculator: a parser over an allowlist, never eval; refusals say why."""

from __future__ import annotations

import math

import pytest

from ragkit.agents.calculator import MAX_CHARS, CalculatorError, CalculatorTool, evaluate, format_number
from ragkit.agents.tools import ToolArgumentsError, ToolError, build_tools

GOOD = [
    ("1 + 2", 3),
    ("2 * (3 + 4) ** 2", 98),
    ("10 / 4", 2.5),
    ("7 // 2", 3),
    ("-7 // 2", -4),
    ("7 % 3", 1),
    ("-3 ** 2", -9),
    ("(-3) ** 2", 9),
    ("+5 - -5", 10),
    ("2 ** -1", 0.5),
    ("2 ^ 10", 1024),  # ^ is read as a power
    ("3 × 4 ÷ 2", 6.0),
    ("1_000 * 3", 3000),
    ("1e3 + 0.5", 1000.5),
    ("sqrt(16)", 4.0),
    ("log(8, 2)", 3.0),
    ("log(e)", 1.0),
    ("log10(1000)", 3.0),
    ("round(3.14159, 2)", 3.14),
    ("round(2.5)", 2),
    ("min(4, 2, 8)", 2),
    ("max(4, 2, 8)", 8),
    ("abs(-4.5)", 4.5),
    ("floor(2.7) + ceil(2.1)", 5),
    ("pi * 2", math.tau),
    ("(1200 - 950) / 950 * 100", (1200 - 950) / 950 * 100),
    ("2 ** 100", 2**100),
    ("((((1 + 1))))", 2),
]


@pytest.mark.parametrize(("expression", "value"), GOOD)
def test_good_expressions_have_their_values(expression, value):
    result = evaluate(expression)
    assert result == pytest.approx(value)
    assert type(result) is type(value)


REFUSED = [
    ("__import__('os')", "function '__import__' is not allowed"),
    ("__import__('os').system('true')", "only these functions may be called"),
    ("().__class__.__bases__", "attribute access not allowed"),
    ("(1).real", "attribute access not allowed"),
    ("math.sqrt(4)", "only these functions may be called"),
    ("x + 1", "name 'x' is not allowed"),
    ("open", "name 'open' is not allowed"),
    ("eval('1')", "function 'eval' is not allowed"),
    ("lambda: 1", "lambda not allowed"),
    ("[i for i in range(3)]", "comprehensions not allowed"),
    ("sum(i for i in [1])", "function 'sum' is not allowed"),
    ("{i: i for i in [1]}", "comprehensions not allowed"),
    ("[1, 2][0]", "indexing not allowed"),
    ("'a' * 3", "only numbers are allowed"),
    ("True + 1", "only numbers are allowed"),
    ("1 < 2", "comparisons not allowed"),
    ("1 and 2", "and/or not allowed"),
    ("1 if 2 else 3", "if/else not allowed"),
    ("(y := 2)", "assignment not allowed"),
    ("1,000", "tuples"),
    ("1 << 10", "operator not allowed"),
    ("~1", "operator not allowed"),
    ("sqrt(x=4)", "positional arguments only"),
    ("sqrt(1, 2)", "sqrt() takes 1 argument(s), got 2"),
    ("9**9**9", "exponent too large"),
    ("10 ** 400", "too large"),
    ("(10 ** 200) * (10 ** 200)", "too large (over 300 digits)"),
    ("2.0 ** 5000", "too large"),
    ("exp(1000)", "too large"),
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("sqrt(-1)", "math error in sqrt(-1): math domain error"),
    ("log(0)", "math domain error"),
    ("(-8) ** (1/3)", "not a real number"),
    ("round(1.5, 99)", "round() takes a whole number of digits"),
    ("1 +", "not a valid arithmetic expression"),
    ("import os", "not a valid arithmetic expression"),
    ("", "the expression is empty"),
    ("1" * (MAX_CHARS + 1), f"the limit is {MAX_CHARS}"),
    ("-" * 200 + "1", "nested too deeply"),
]


@pytest.mark.parametrize(("expression", "reason"), REFUSED)
def test_refused_expressions_say_why(expression, reason):
    with pytest.raises(CalculatorError) as caught:
        evaluate(expression)
    assert reason in str(caught.value)
    assert len(str(caught.value)) < 200


def test_the_calculator_never_calls_eval(monkeypatch):
    import builtins

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert evaluate("2 ** 8 + sqrt(9)") == 259.0


def test_the_calculator_tool():
    [calc] = build_tools(["calculator"])
    assert isinstance(calc, CalculatorTool)
    spec = calc.spec()["function"]
    assert spec["name"] == "calculator"
    assert "sqrt" in spec["description"]
    assert spec["parameters"]["required"] == ["expression"]
    out = calc.call({"expression": "(17.5 - 12) * 3 / 4"})
    assert out.content == "4.125" and out.data == 4.125
    assert calc.call({"expression": "10 / 2"}).content == "5"
    with pytest.raises(ToolError, match=r"^calculator: division by zero$"):
        calc.call({"expression": "1/0"})
    with pytest.raises(ToolArgumentsError, match="expression: required argument is missing"):
        calc.call({"expr": "1"})
    with pytest.raises(ToolArgumentsError, match="expression: string should have at most 500 characters"):
        calc.call({"expression": "1+" * 300 + "1"})


@pytest.mark.parametrize(
    ("value", "shown"), [(3, "3"), (2.0, "2"), (1 / 3, "0.333333333333"), (1e20, "1e+20"), (2**70, str(2**70))]
)
def test_numbers_are_shown_briefly(value, shown):
    assert format_number(value) == shown
