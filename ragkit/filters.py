"""One metadata filter language shared by every store.

A filter is written as a small Python-like expression::

    source == "guide.md" and page >= 2
    lang in ["en", "de"] and not draft
    1990 <= year < 2000 or author != "anon"
    source.startswith("hr/")          # a folder, or any string prefix

or as a JSON-style dict (handy in Python and over HTTP)::

    {"$and": [{"lang": {"$in": ["en", "de"]}}, {"page": {"$gte": 2}}]}
    {"source": "guide.md"}            # equality shorthand
    {"source": {"$prefix": "hr/"}}

Both parse into the same tree (:class:`Comparison`, :class:`And`, :class:`Or`,
:class:`Not`), which each store evaluates its own way: the FAISS store and
the BM25 index with :meth:`Comparison.matches` (over in-memory columns),
the Milvus connector by translating to Milvus expressions. A comparison on a
field a chunk lacks is false, everywhere.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from ragkit.errors import FilterError

Scalar = Union[str, int, float, bool]
Operator = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in", "prefix"]
"""``prefix``: the field is a string starting with the value (``field.startswith("x")``, ``$prefix``)."""

_AST_OPS: dict[type, Operator] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_MIRRORED: dict[Operator, Operator] = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_DICT_OPS: dict[str, Operator] = {
    "$eq": "==",
    "$ne": "!=",
    "$lt": "<",
    "$lte": "<=",
    "$gt": ">",
    "$gte": ">=",
    "$in": "in",
    "$nin": "not in",
    "$prefix": "prefix",
}
_NAMED_CONSTANTS = {"true": True, "false": False, "True": True, "False": False}
MAX_FILTER_DEPTH = 32
"""How deeply a filter may nest (``and``/``or``/``not``, ``$and``/``$or``/``$not``, dotted names, unary signs)."""
MAX_FILTER_CHARS = 10_000
"""The longest filter text accepted (expression or JSON)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value``; for ``in`` / ``not in`` the value is a tuple, for ``prefix`` a string."""

    field: str
    op: Operator
    value: Scalar | tuple[Scalar, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether ``metadata`` satisfies this comparison (missing field: false)."""
        if self.field not in metadata:
            return False
        actual = metadata[self.field]
        try:
            if self.op == "in":
                return actual in self.value  # type: ignore[operator]
            if self.op == "not in":
                return actual not in self.value  # type: ignore[operator]
            if self.op == "prefix":
                return isinstance(actual, str) and actual.startswith(self.value)  # type: ignore[arg-type]
            return bool(_PY_COMPARE[self.op](actual, self.value))
        except TypeError:
            return False

    def fields(self) -> set[str]:
        """The field names this filter reads."""
        return {self.field}


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` hold."""

    items: tuple[Filter, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether every item matches."""
        return all(item.matches(metadata) for item in self.items)

    def fields(self) -> set[str]:
        """The field names this filter reads."""
        return set().union(*(item.fields() for item in self.items))


@dataclass(frozen=True, slots=True)
class Or:
    """At least one of ``items`` holds."""

    items: tuple[Filter, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether any item matches."""
        return any(item.matches(metadata) for item in self.items)

    def fields(self) -> set[str]:
        """The field names this filter reads."""
        return set().union(*(item.fields() for item in self.items))


@dataclass(frozen=True, slots=True)
class Not:
    """``item`` does not hold."""

    item: Filter

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether the inner filter does not match."""
        return not self.item.matches(metadata)

    def fields(self) -> set[str]:
        """The field names this filter reads."""
        return self.item.fields()


Filter = Union[Comparison, And, Or, Not]
FilterLike = Union[Filter, str, Mapping[str, Any], None]

_PY_COMPARE: dict[str, Any] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def parse_filter(spec: FilterLike) -> Filter | None:
    """Parse a filter given as an expression string, a dict or a ready tree.

    Raises :class:`FilterError` that quotes the part it could not read.
    """
    if spec is None or isinstance(spec, (Comparison, And, Or, Not)):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if not text:
            return None
        if len(text) > MAX_FILTER_CHARS:
            raise FilterError(f"filter is {len(text):,} characters long; the limit is {MAX_FILTER_CHARS:,}")
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise FilterError(f"filter is not valid JSON: {exc}") from None
            except RecursionError:
                raise _too_deep() from None
            return _from_dict(data, 0)
        return _from_expression(text)
    if isinstance(spec, Mapping):
        return _from_dict(spec, 0)
    raise FilterError(f"filter must be a string or a dict, not {type(spec).__name__}")


def _too_deep(where: str = "") -> FilterError:
    return FilterError(f"filter nests more than {MAX_FILTER_DEPTH} levels deep{where}; write it flatter")


def _deeper(depth: int, where: str = "") -> int:
    """``depth + 1``, or a :class:`FilterError` past :data:`MAX_FILTER_DEPTH` (before Python's own limit)."""
    if depth >= MAX_FILTER_DEPTH:
        raise _too_deep(where)
    return depth + 1


def value_kind(value: Any) -> str:
    """``number``, ``string``, ``boolean`` or ``other`` (lists, objects, null): what a comparison can meet."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def field_kinds(rows: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """The kinds of value each field holds across ``rows``."""
    kinds: dict[str, set[str]] = {}
    for row in rows:
        for name, value in row.items():
            kinds.setdefault(name, set()).add(value_kind(value))
    return kinds


_KIND_WORDS = {"number": "numbers", "string": "strings", "boolean": "true/false values"}


def check_kinds(flt: Filter | None, kinds: Mapping[str, set[str]], where: str) -> None:
    """Refuse a comparison whose value can never equal or order against what its field holds.

    ``page > "2"`` on a field of numbers matches nothing (Python cannot
    order a number against a string), and ``ask`` would then say the
    documents do not answer. A field holding several kinds, or lists and
    objects, is left alone.
    """
    if flt is None:
        return
    if isinstance(flt, (And, Or)):
        for item in flt.items:
            check_kinds(item, kinds, where)
        return
    if isinstance(flt, Not):
        check_kinds(flt.item, kinds, where)
        return
    held = kinds.get(flt.field)
    if not held or len(held) != 1 or "other" in held:
        return
    [kind] = held
    if flt.op == "prefix":
        if kind != "string":
            raise FilterError(
                f"filter {flt.field}.startswith({json.dumps(flt.value)}) needs a field of strings, but field "
                f"{flt.field!r} holds {_KIND_WORDS.get(kind, kind)} in {where}: it could never match"
            )
        return
    values = flt.value if isinstance(flt.value, tuple) else (flt.value,)
    wrong = [v for v in values if value_kind(v) != kind and not {value_kind(v), kind} <= {"number", "boolean"}]
    if not wrong:
        return
    shown = json.dumps(flt.value if not isinstance(flt.value, tuple) else list(flt.value))
    hint = ""
    if kind == "number" and isinstance(wrong[0], str):
        try:
            hint = f"; write the number without quotes: {flt.field} {flt.op} {float(wrong[0]):g}"
        except ValueError:
            hint = ""
    elif kind == "string":
        hint = f"; quote it: {flt.field} {flt.op} {json.dumps(str(wrong[0]))}"
    raise FilterError(
        f"filter compares field {flt.field!r}, which holds {_KIND_WORDS.get(kind, kind)} in {where}, "
        f"with {shown} ({value_kind(wrong[0])}): it could never match{hint}"
    )


def check_fields(flt: Filter | None, known: set[str], where: str) -> None:
    """Refuse a filter that names a field no stored chunk has."""
    if flt is None:
        return
    missing = sorted(flt.fields() - known)
    if missing:
        names = ", ".join(repr(m) for m in missing)
        listing = ", ".join(sorted(known)) or "(none: the collection is empty)"
        raise FilterError(f"filter field {names} does not exist in {where}; known fields: {listing}")


# -- expression form ---------------------------------------------------------


def _from_expression(text: str) -> Filter:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        hint = ""
        if re.search(r"(?<![=!<>])=(?!=)", text):
            hint = "; compare with == (a single = assigns)"
        raise FilterError(f"cannot parse filter {text!r}: {exc.msg} at column {exc.offset}{hint}") from None
    except (RecursionError, MemoryError):
        raise _too_deep() from None
    return _convert(tree.body, text, 0)


def _convert(node: ast.expr, text: str, depth: int) -> Filter:
    depth = _deeper(depth)
    if isinstance(node, ast.BoolOp):
        items = tuple(_convert(value, text, depth) for value in node.values)
        return And(items) if isinstance(node.op, ast.And) else Or(items)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return Not(_convert(node.operand, text, depth))
    if isinstance(node, ast.Compare):
        return _convert_compare(node, text)
    if isinstance(node, ast.Call):
        return _convert_call(node, text)
    if isinstance(node, ast.Name) and node.id not in _NAMED_CONSTANTS:
        # a bare field name means "field is true", as in `not draft`
        return Comparison(node.id, "==", True)
    raise FilterError(f"unsupported filter syntax {_snippet(node, text)!r} in {text!r}")


def _convert_compare(node: ast.Compare, text: str) -> Filter:
    operands = [node.left, *node.comparators]
    parts: list[Filter] = []
    for left, op_node, right in zip(operands, node.ops, operands[1:], strict=False):
        op = _AST_OPS.get(type(op_node))
        if op is None:
            raise FilterError(f"unsupported operator in {_snippet(node, text)!r}")
        parts.append(_comparison(left, op, right, text))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _convert_call(node: ast.Call, text: str) -> Comparison:
    """``field.startswith("x")``: the one method call a filter may hold."""
    func = node.func
    field_name = _field_name(func.value) if isinstance(func, ast.Attribute) else None
    if not isinstance(func, ast.Attribute) or func.attr != "startswith" or field_name is None:
        raise FilterError(
            f"unsupported filter syntax {_snippet(node, text)!r} in {text!r}; "
            'the only call a filter may hold is field.startswith("prefix")'
        )
    if len(node.args) != 1 or node.keywords:
        raise FilterError(f"{_snippet(node, text)!r}: startswith takes exactly one string")
    return _checked(field_name, "prefix", _literal(node.args[0], text))


def _comparison(left: ast.expr, op: Operator, right: ast.expr, text: str) -> Comparison:
    left_field = _field_name(left)
    right_field = _field_name(right)
    if left_field is not None and right_field is None:
        value = _literal(right, text)
        field_name = left_field
    elif right_field is not None and left_field is None and op not in ("in", "not in"):
        value = _literal(left, text)
        field_name, op = right_field, _MIRRORED[op]
    else:
        raise FilterError(
            f"each comparison needs one field and one literal value: {_snippet(left, text)} {op} "
            f"{_snippet(right, text)}"
        )
    return _checked(field_name, op, value)


def _field_name(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):  # a.b.c, read without recursion
        parts.append(node.attr)
        node = node.value
        if len(parts) > MAX_FILTER_DEPTH:
            raise _too_deep(" (a dotted field name)")
    if isinstance(node, ast.Name) and node.id not in _NAMED_CONSTANTS:
        return ".".join([node.id, *reversed(parts)])
    return None


def _literal(node: ast.expr, text: str, depth: int = 0) -> Any:
    depth = _deeper(depth)
    if isinstance(node, ast.Name) and node.id in _NAMED_CONSTANTS:
        return _NAMED_CONSTANTS[node.id]
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return tuple(_literal(element, text, depth) for element in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.UnaryOp):
        # -5 is one sign; a chain of them is refused, not handed to literal_eval's recursion
        raise FilterError(f"expected a literal value, got {_snippet(node, text)[:40]!r}")
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise FilterError(f"expected a literal value, got {_snippet(node, text)!r}") from None
    except RecursionError:
        raise _too_deep() from None


def _snippet(node: ast.AST, text: str) -> str:
    return ast.get_source_segment(text, node) or ast.dump(node)


# -- dict form ---------------------------------------------------------------


def _from_dict(spec: Any, depth: int) -> Filter:
    depth = _deeper(depth)
    if not isinstance(spec, Mapping) or not spec:
        raise FilterError(f"filter dict must be a non-empty object, got {spec!r}")
    parts: list[Filter] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key} takes a non-empty list of filters, got {value!r}")
            items = tuple(_from_dict(item, depth) for item in value)
            parts.append(And(items) if key == "$and" else Or(items))
        elif key == "$not":
            parts.append(Not(_from_dict(value, depth)))
        elif key.startswith("$"):
            raise FilterError(f"unknown filter operator {key!r}; use $and, $or, $not at the top level")
        elif isinstance(value, Mapping):
            for op_name, operand in value.items():
                op = _DICT_OPS.get(op_name)
                if op is None:
                    raise FilterError(f"unknown operator {op_name!r} on field {key!r}; known: {', '.join(_DICT_OPS)}")
                parts.append(_checked(key, op, tuple(operand) if isinstance(operand, list) else operand))
        else:
            parts.append(_checked(key, "==", value))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _checked(field_name: str, op: Operator, value: Any) -> Comparison:
    if op in ("in", "not in"):
        if not isinstance(value, tuple) or not all(_is_scalar(v) for v in value):
            raise FilterError(f"'{field_name} {op}' needs a list of plain values, got {value!r}")
    elif op == "prefix":
        if not isinstance(value, str):
            raise FilterError(f"'{field_name}' prefix needs a string, got {value!r}")
    elif not _is_scalar(value):
        raise FilterError(f"'{field_name} {op}' needs a string, number or boolean, got {value!r}")
    return Comparison(field_name, op, value)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))
