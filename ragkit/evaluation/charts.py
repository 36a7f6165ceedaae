"""Small inline SVG charts for the HTML report: grouped bars and lines, no JavaScript, no library.

Each function returns one ``<svg>`` element as a string. Values that are
``None`` are left out (a gap in a line, no bar). Every bar and point has a
``<title>`` with its exact value, which browsers show on hover.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
_WIDTH = 640
_HEIGHT = 270
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 16, 34, 70
DASHES = ("", "7 4", "2 3", "10 3 2 3")
"""Line styles per series, so lines that coincide stay visible."""


def color(index: int) -> str:
    """The series colour of ``index`` (cycling through the palette)."""
    return PALETTE[index % len(PALETTE)]


def nice_max(value: float) -> float:
    """A round upper bound for an axis that shows ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0 or math.isnan(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power:
            return step * power
    return 10.0 * power  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _clip(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _frame(title: str, y_max: float) -> list[str]:
    plot_h = _HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'width="{_WIDTH}" height="{_HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text x="{_LEFT}" y="18" class="chart-title">{escape(title)}</text>',
    ]
    for i in range(5):
        value = y_max * i / 4
        y = _TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt(value)}</text>')
    return parts


def _legend(series: Sequence[str], y: float = 18) -> list[str]:
    """Coloured keys, right-aligned on the title line."""
    parts = []
    x = _WIDTH - _RIGHT - sum(24 + 6.5 * len(name) for name in series)
    x = max(x, _WIDTH / 2)
    for i, name in enumerate(series):
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{color(i)}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="{y:.1f}" class="legend">{escape(name)}</text>')
        x += 24 + 6.5 * len(name)
    return parts


def bar_chart(
    title: str,
    groups: Sequence[str],
    series: Sequence[str],
    values: Mapping[tuple[str, str], float | None],
    y_max: float | None = None,
    unit: str = "",
) -> str:
    """Grouped bars: one group per ``groups`` entry, one bar per ``series`` entry (``values[(group, series)]``)."""
    present = [v for v in values.values() if v is not None]
    top = y_max if y_max is not None else nice_max(max(present, default=0.0))
    parts = _frame(title + (f" ({unit.strip()})" if unit.strip() else ""), top)
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM
    group_w = plot_w / max(len(groups), 1)
    bar_w = min(28.0, (group_w - 10) / max(len(series), 1))
    for g, group in enumerate(groups):
        x0 = _LEFT + g * group_w + (group_w - bar_w * len(series)) / 2
        for s, name in enumerate(series):
            value = values.get((group, name))
            if value is None:
                continue
            h = max(plot_h * min(value, top) / top if top else 0, 1.0)  # a zero still shows as a line
            x = x0 + s * bar_w
            y = _TOP + plot_h - h
            tip = escape(f"{name} · {group}: {_fmt(value)} {unit}".rstrip())
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{color(s)}">'
                f"<title>{tip}</title></rect>"
            )
        label_x = _LEFT + g * group_w + group_w / 2
        label_y = _TOP + plot_h + 14
        parts.append(
            f'<text x="{label_x:.1f}" y="{label_y}" text-anchor="end" class="tick" '
            f'transform="rotate(-25 {label_x:.1f} {label_y})">{escape(_clip(group))}'
            f"<title>{escape(group)}</title></text>"
        )
    parts += _legend(series)
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    title: str, xs: Sequence[int], series: Mapping[str, Sequence[float | None]], y_max: float = 1.0, x_label: str = "k"
) -> str:
    """One line per ``series`` entry over ``xs`` (points at evenly spaced x positions, labelled with ``xs``)."""
    parts = _frame(title, y_max)
    plot_w = _WIDTH - _LEFT - _RIGHT - 20
    plot_h = _HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(xs) - 1, 1)

    def position(i: int, value: float) -> tuple[float, float]:
        return _LEFT + 10 + i * step, _TOP + plot_h - plot_h * min(value, y_max) / y_max

    for i, x_value in enumerate(xs):
        x, _ = position(i, 0)
        parts.append(
            f'<text x="{x:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle" class="tick">'
            f"{escape(x_label)}={x_value}</text>"
        )
    for s, (name, ys) in enumerate(series.items()):
        points = [(i, v) for i, v in enumerate(ys) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{position(i, v)[0]:.1f},{position(i, v)[1]:.1f}" for i, v in points)
            dash = DASHES[s % len(DASHES)]
            style = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color(s)}" stroke-width="2"{style}/>')
        for i, v in points:
            x, y = position(i, v)
            tip = escape(f"{name} @{xs[i]}: {_fmt(v)}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color(s)}"><title>{tip}</title></circle>')
    parts += _legend(list(series))
    parts.append("</svg>")
    return "".join(parts)
