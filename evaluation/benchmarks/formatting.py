"""Formatting helpers shared by the benchmark report modules (``*_report.py`` and ``report.py``).

Every cell of the page and of the plain-text summary goes through these, so
a missing number shows the same way (``–``) everywhere. No heavy imports.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, Any, str, bool | None]
"""One target as a report module states it: (target, goal, measured, shown, met); ``met`` is None when not measured."""


def get(data: Any, *path: str | int, default: Any = None) -> Any:
    """``data[path[0]][path[1]]...``, or ``default`` where a level is missing or not a dict."""
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        else:
            return default
    return data


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` to three decimals, or None when either is missing (or ``b`` is zero)."""
    return round(a / b, 3) if a is not None and b else None


def fx(value: float | None) -> str:
    """A ratio as ``1.23x``."""
    return "–" if value is None else f"{value:.2f}x"


def num(value: float | None, digits: int = 2) -> str:
    """A number with thousands separators; integers and large values without decimals."""
    if value is None:
        return "–"
    if isinstance(value, int) or (abs(value) >= 1000 and digits <= 2):
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def mib(value: float | None) -> str:
    """Bytes as whole MiB."""
    return "–" if value is None else f"{value / 2**20:,.0f} MiB"


def ms(value: float | None) -> str:
    """Milliseconds with their unit: three decimals under 10 ms, one above."""
    if value is None:
        return "–"
    return f"{value:.3f} ms" if value < 10 else f"{value:,.1f} ms"


def pct(value: float | None) -> str:
    """A rate in [0, 1] to four decimals."""
    return "–" if value is None else f"{value:.4f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def at_least(value: float | None, bound: float) -> bool | None:
    """Whether a measured value reaches ``bound``; None when it was not measured."""
    return None if value is None else value >= bound


def at_most(value: float | None, bound: float) -> bool | None:
    """Whether a measured value stays within ``bound``; None when it was not measured."""
    return None if value is None else value <= bound


def below(value: float | None, bound: float) -> bool | None:
    """Whether a measured value is under ``bound``; None when it was not measured."""
    return None if value is None else value < bound
