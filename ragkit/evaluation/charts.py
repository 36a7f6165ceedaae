"""Small inline SVG charts for the HTML report: grouped bars and lines, no JavaScript, no library.

Each function returns one ``<svg>`` element as a string. Values that are
``None`` are left out (a gap in a line, no bar). Every bar and point has a
``<title>`` with its exact value, which browsers show on hover. Bars can
use a base-10 log axis (latency: milliseconds to seconds in one chart);
lines that would coincide are drawn a few pixels apart and named in the
legend.
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


def _frame(title: str, y_max: float, ticks: Sequence[tuple[float, float]] | None = None) -> list[str]:
    """The ``<svg>`` opening, the title and the horizontal grid lines with their labels.

    ``ticks`` are ``(value, fraction of the plot height)`` pairs; by default five even steps from 0 to ``y_max``.
    """
    plot_h = _HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'width="{_WIDTH}" height="{_HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text x="{_LEFT}" y="18" class="chart-title">{escape(title)}</text>',
    ]
    for value, fraction in ticks if ticks is not None else [(y_max * i / 4, i / 4) for i in range(5)]:
        y = _TOP + plot_h - plot_h * fraction
        parts.append(f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt(value)}</text>')
    return parts


class LogScale:
    """A base-10 axis from the power of ten below the smallest positive value to the one at or above the largest.

    ``fraction(v)`` is ``(log10 v - log10 low) / (log10 high - log10 low)``; zero and negative values sit on
    the baseline. A 5 ms retrieval and a 3,000 ms generation both stay readable, where a linear axis
    flattens the first to a line.
    """

    def __init__(self, values: Sequence[float]) -> None:
        positive = [v for v in values if v > 0 and math.isfinite(v)]
        if not positive:
            self.low, self.high = 0, 1
        else:
            self.low = math.ceil(math.log10(min(positive))) - 1  # strictly below the smallest: it gets a bar
            self.high = max(math.ceil(math.log10(max(positive))), self.low + 1)

    def fraction(self, value: float) -> float:
        """Where ``value`` sits between the baseline (0) and the top (1)."""
        if value <= 0 or not math.isfinite(value):
            return 0.0
        return min(max((math.log10(value) - self.low) / (self.high - self.low), 0.0), 1.0)

    def ticks(self) -> list[tuple[float, float]]:
        """A labelled grid line at each power of ten, baseline to top."""
        return [(10.0**e, (e - self.low) / (self.high - self.low)) for e in range(self.low, self.high + 1)]


def _legend(series: Sequence[str], title: str, y: float = 18) -> list[str]:
    """Coloured keys, right-aligned on the title line (starting after the title when they are many)."""
    parts = []
    x = _WIDTH - _RIGHT - sum(24 + 6.5 * len(name) for name in series)
    x = max(x, min(_LEFT + 7.5 * len(title) + 16, _WIDTH / 2))
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
    log_scale: bool = False,
) -> str:
    """Grouped bars: one group per ``groups`` entry, one bar per ``series`` entry (``values[(group, series)]``).

    With ``log_scale`` the axis is base 10 (see :class:`LogScale`) and the title says "log scale"; a zero
    shows as a line on the baseline.
    """
    present = [v for v in values.values() if v is not None]
    suffix = ", ".join(x for x in (unit.strip(), "log scale" if log_scale else "") if x)
    full_title = title + (f" ({suffix})" if suffix else "")
    if log_scale:
        scale = LogScale(present)
        fraction = scale.fraction
        parts = _frame(full_title, 10.0**scale.high, scale.ticks())
    else:
        top = y_max if y_max is not None else nice_max(max(present, default=0.0))

        def fraction(value: float) -> float:
            return min(value, top) / top if top else 0.0

        parts = _frame(full_title, top)
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
            h = max(plot_h * fraction(value), 1.0)  # a zero still shows as a line
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
    parts += _legend(series, full_title)
    parts.append("</svg>")
    return "".join(parts)


OFFSET_PX = 3.0
"""How far apart (right and up, in pixels) each repeat of an identical series is drawn in a line chart."""


def equal_series(series: Mapping[str, Sequence[float | None]]) -> dict[str, str]:
    """Each series whose values equal an earlier one's, mapped to the first series with those values."""
    first: dict[tuple[float | None, ...], str] = {}
    same: dict[str, str] = {}
    for name, ys in series.items():
        key = tuple(ys)
        if key in first:
            same[name] = first[key]
        else:
            first[key] = name
    return same


def line_chart(
    title: str, xs: Sequence[int], series: Mapping[str, Sequence[float | None]], y_max: float = 1.0, x_label: str = "k"
) -> str:
    """One line per ``series`` entry over ``xs`` (points at evenly spaced x positions, labelled with ``xs``).

    A series with the same values as an earlier one would be hidden under it: each repeat is drawn
    :data:`OFFSET_PX` pixels further right and up than the one before, and its legend entry says which
    series it equals (``basic (= hybrid)``).
    """
    parts = _frame(title, y_max)
    plot_w = _WIDTH - _LEFT - _RIGHT - 20
    plot_h = _HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(xs) - 1, 1)
    same = equal_series(series)
    repeats: dict[str, int] = {}
    shifts = {}
    for name in series:
        if name in same:
            repeats[same[name]] = repeats.get(same[name], 0) + 1
            shifts[name] = repeats[same[name]] * OFFSET_PX
        else:
            shifts[name] = 0.0

    def position(i: int, value: float, shift: float = 0.0) -> tuple[float, float]:
        return _LEFT + 10 + i * step + shift, _TOP + plot_h - plot_h * min(value, y_max) / y_max - shift

    for i, x_value in enumerate(xs):
        x, _ = position(i, 0)
        parts.append(
            f'<text x="{x:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle" class="tick">'
            f"{escape(x_label)}={x_value}</text>"
        )
    labels = []
    for s, (name, ys) in enumerate(series.items()):
        shift = shifts[name]
        label = f"{name} (= {same[name]})" if name in same else name
        labels.append(label)
        points = [(i, v) for i, v in enumerate(ys) if v is not None]
        if len(points) > 1:
            path = " ".join("{:.1f},{:.1f}".format(*position(i, v, shift)) for i, v in points)
            dash = DASHES[s % len(DASHES)]
            style = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color(s)}" stroke-width="2"{style}/>')
        for i, v in points:
            x, y = position(i, v, shift)
            tip = escape(f"{label} @{xs[i]}: {_fmt(v)}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color(s)}"><title>{tip}</title></circle>')
    if same:
        parts.append(
            f'<text x="{_LEFT}" y="{_HEIGHT - 8}" class="tick">Equal series are drawn {OFFSET_PX:g} px apart '
            "(right and up) so each stays visible.</text>"
        )
    parts += _legend(labels, title)
    parts.append("</svg>")
    return "".join(parts)
