"""A safe calculator: arithmetic parsed with :mod:`ast` and walked over an allowlist, never ``eval``.

::

    from ragkit.agents.calculator import evaluate

    evaluate("2 * (3 + 4) ** 2")      # 98
    evaluate("sqrt(2) / 2")           # 0.7071067811865476
    evaluate("__import__('os')")      # CalculatorError: name '__import__' is not allowed ...

The expression is parsed in ``eval`` mode and only these nodes are
evaluated: numbers, ``+ - * / // % **``, unary ``+``/``-``, parentheses,
the constants ``pi``, ``e`` and ``tau``, and calls of the functions in
:data:`FUNCTIONS` with positional arguments. Anything else (names,
attributes, subscripts, strings, lambdas, comprehensions, comparisons) is
refused with a message saying what. ``^`` is read as a power, the way people
(and small models) write it. Inputs, exponents and results are bounded, so
``9**9**9`` is refused instead of running for hours.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from ragkit.agents.tools import Tool, ToolError, ToolOutput
from ragkit.registry import register

Number = int | float

MAX_CHARS = 500
"""Longest expression accepted."""
MAX_DIGITS = 300
"""Largest integer result, in decimal digits (floats are bounded by the float range)."""
MAX_EXPONENT = 10_000
"""Largest exponent of a power."""
MAX_DEPTH = 50
"""Deepest nesting of operations."""
MAX_ROUND_DIGITS = 15


class CalculatorError(ToolError):
    """The expression cannot be computed: refused syntax, a math error, or a result out of bounds."""


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _round(x: Number, digits: int | None = None) -> Number:
    if digits is None:
        return round(x)
    if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
        raise CalculatorError(
            f"round() takes a whole number of digits between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}"
        )
    return round(x, digits)


def _min(*args: Number) -> Number:
    if not args:
        raise CalculatorError("min() needs at least one number")
    return min(args)


def _max(*args: Number) -> Number:
    if not args:
        raise CalculatorError("max() needs at least one number")
    return max(args)


FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int | None]] = {
    "sqrt": (math.sqrt, 1, 1),
    "log": (_log, 1, 2),
    "log10": (math.log10, 1, 1),
    "log2": (math.log2, 1, 1),
    "exp": (math.exp, 1, 1),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "min": (_min, 1, None),
    "max": (_max, 1, None),
}
"""The functions an expression may call: name -> (function, fewest and most arguments; None: any number)."""

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Compare: "comparisons",
    ast.BoolOp: "and/or",
    ast.IfExp: "if/else",
    ast.NamedExpr: "assignment",
    ast.JoinedStr: "strings",
    ast.List: "lists",
    ast.Tuple: "tuples (write 1000, not 1,000)",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.Starred: "*arguments",
    ast.Await: "await",
    ast.Yield: "yield",
}


def evaluate(expression: str) -> Number:
    """The value of an arithmetic ``expression``; raises :class:`CalculatorError` with a short reason."""
    if not isinstance(expression, str):
        raise CalculatorError("the expression must be text")
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/").replace("−", "-")
    if not text:
        raise CalculatorError("the expression is empty")
    if len(text) > MAX_CHARS:
        raise CalculatorError(f"the expression is {len(text)} characters long; the limit is {MAX_CHARS}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        where = f" at character {exc.offset}" if exc.offset else ""
        raise CalculatorError(f"not a valid arithmetic expression{where}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise CalculatorError("the expression is nested too deeply") from None
    try:
        value = _Evaluator(text).visit(tree.body, 0)
    except CalculatorError:
        raise
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("the result is too large") from None
    except RecursionError:
        raise CalculatorError("the expression is nested too deeply") from None
    except (ValueError, TypeError) as exc:
        raise CalculatorError(f"math error: {exc}") from None
    return value


def format_number(value: Number) -> str:
    """``value`` as the model reads it: integers plainly, floats to 12 significant digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return format(value, ".12g")
    return str(value)


class _Evaluator:
    def __init__(self, text: str) -> None:
        self.text = text

    def snippet(self, node: ast.AST) -> str:
        source = ast.get_source_segment(self.text, node) or type(node).__name__
        return source if len(source) <= 40 else source[:37] + "..."

    def visit(self, node: ast.expr, depth: int) -> Number:
        if depth > MAX_DEPTH:
            raise CalculatorError("the expression is nested too deeply")
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CalculatorError(f"only numbers are allowed, not {self.snippet(node)}")
            return self.checked(value)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return +operand
            raise CalculatorError(f"operator not allowed in {self.snippet(node)}; use + - * / // % **")
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise CalculatorError(f"name {node.id!r} is not allowed; known constants: {', '.join(CONSTANTS)}")
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        what = _REFUSED.get(type(node), type(node).__name__)
        raise CalculatorError(f"{what} not allowed in a calculation: {self.snippet(node)}")

    def binary(self, node: ast.BinOp, depth: int) -> Number:
        entry = _BINARY.get(type(node.op))
        if entry is None:
            raise CalculatorError(f"operator not allowed in {self.snippet(node)}; use + - * / // % **")
        symbol, function = entry
        left = self.visit(node.left, depth + 1)
        right = self.visit(node.right, depth + 1)
        if symbol == "**":
            self.check_power(left, right, node)
        result = function(left, right)
        if isinstance(result, complex):
            raise CalculatorError(f"{self.snippet(node)} is not a real number")
        return self.checked(result)

    def check_power(self, base: Number, exponent: Number, node: ast.AST) -> None:
        if abs(exponent) > MAX_EXPONENT:
            raise CalculatorError(f"exponent too large in {self.snippet(node)} (limit {MAX_EXPONENT})")
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
            digits = exponent * math.log10(abs(base))
            if digits > MAX_DIGITS:
                raise CalculatorError(f"the result of {self.snippet(node)} is too large (over {MAX_DIGITS} digits)")

    def call(self, node: ast.Call, depth: int) -> Number:
        if not isinstance(node.func, ast.Name):
            raise CalculatorError(f"only these functions may be called: {', '.join(FUNCTIONS)}")
        name = node.func.id
        if name not in FUNCTIONS:
            raise CalculatorError(f"function {name!r} is not allowed; allowed: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise CalculatorError(f"{name}() takes positional arguments only")
        function, fewest, most = FUNCTIONS[name]
        count = len(node.args)
        if count < fewest or (most is not None and count > most):
            wanted = str(fewest) if fewest == most else f"{fewest} to {most}" if most else f"at least {fewest}"
            raise CalculatorError(f"{name}() takes {wanted} argument(s), got {count}")
        args = [self.visit(arg, depth + 1) for arg in node.args]
        try:
            result = function(*args)
        except ValueError as exc:
            raise CalculatorError(f"math error in {self.snippet(node)}: {exc}") from None
        return self.checked(result)

    def checked(self, value: Number) -> Number:
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                raise CalculatorError("the result is not a finite number")
        elif isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
            raise CalculatorError(f"the result is too large (over {MAX_DIGITS} digits)")
        return value


@register("tool", "calculator")
class CalculatorTool(Tool):
    """Compute an arithmetic expression exactly, e.g. "(17.5 - 12) * 3 / 4" or "sqrt(2) * 10 ** 3".

    Operators: + - * / // % ** and parentheses; functions: sqrt, log, log10, log2,
    exp, sin, cos, tan, floor, ceil, abs, round, min, max; constants: pi, e.
    """

    default_name = "calculator"

    def run(
        self,
        expression: Annotated[
            str,
            Field(
                max_length=MAX_CHARS,
                description="An arithmetic expression with numbers only, e.g. (1200 - 950) / 950 * 100",
            ),
        ],
    ) -> ToolOutput:
        """Evaluate ``expression`` (see :func:`evaluate`)."""
        value = evaluate(expression)
        return ToolOutput(content=format_number(value), data=value)
