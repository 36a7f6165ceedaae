"""The HTML report's layout at 1,400 px and its charts (issue 14, item 22).

A long question or answer made the per-question table tens of thousands of pixels wide (the metric
columns out of sight), chunk text did not wrap, identical "metric vs k" lines hid each other and a
linear latency axis flattened retrieval next to generation. The CSS rules and the SVG geometry are
checked here without a browser; where Chromium is installed, the real layout at 1,400 px is measured too.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ragkit.evaluation.charts import bar_chart, line_chart
from ragkit.evaluation.html_report import charts, render_html

from .helpers import dump_dom, needs_chromium
from .test_reports import make_result

SVG = "{http://www.w3.org/2000/svg}"
LONG = 2000


def css_rules(page: str) -> dict[str, dict[str, str]]:
    """The page's ``<style>`` as ``{selector: {property: value}}`` (every selector of a rule, declarations merged)."""
    found = re.search(r"<style>(.*?)</style>", page, re.S)
    assert found is not None
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", found.group(1)):
        declarations = {}
        for declaration in body.split(";"):
            name, sep, value = declaration.partition(":")
            if sep:
                declarations[name.strip()] = value.strip()
        for selector in selectors.split(","):
            rules.setdefault(" ".join(selector.split()), {}).update(declarations)
    return rules


class Cells(HTMLParser):
    """The classes and text of each cell of each ``tr.sample`` row, and the elements enclosing ``table#samples``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[set[str], str]]] = []
        self.open: list[tuple[str, set[str], str | None]] = []
        self.table_parents: list[tuple[str, set[str]]] = []
        self.in_row = False
        self.cell: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = set((found.get("class") or "").split())
        if tag == "table" and found.get("id") == "samples":
            self.table_parents = [(t, c) for t, c, _ in self.open]
        if tag == "tr":
            self.in_row = "sample" in classes
            if self.in_row:
                self.rows.append([])
        if tag == "td" and self.in_row:
            self.cell = [classes, ""]
        if tag not in ("meta", "input", "br", "wbr"):
            self.open.append((tag, classes, found.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            self.rows[-1].append((self.cell[0], self.cell[1]))
            self.cell = None
        if tag == "tr":
            self.in_row = False
        while self.open:
            if self.open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell[1] += data


def long_report(tmp_path: Path) -> dict[str, Any]:
    """The synthetic report with one question, answer, reference and chunk text of 2,000+ characters, no spaces."""
    data = make_result(tmp_path).to_dict()
    sample = data["samples"][3]  # rag q0
    sample["question"] = "Q" * LONG
    sample["answer"] = "A" * LONG
    sample["references"] = ["R" * LONG]
    data["chunks"][sample["hits"][0]["chunk_id"]]["text"] = "Z" * (LONG + 1000)
    return data


# -- 1. the per-question table ------------------------------------------------------------------------


def test_long_text_cells_wrap_and_metric_cells_do_not(tmp_path):
    page = render_html(long_report(tmp_path))
    rules = css_rules(page)
    assert rules["#samples td.t"]["overflow-wrap"] == "anywhere"  # a 2,000-character word breaks
    for cell in ("td.q", "td.a", "td.hitcell"):  # question, answer, top hit: bounded widths
        assert rules[f"#samples {cell}"]["max-width"].endswith("em")
    assert rules["td.v"]["white-space"] == "nowrap"  # numbers never break
    wrap = rules[".table-wrap"]
    assert wrap["overflow"] == "auto" and wrap["max-width"] == "100%"  # scrolls sideways as a last resort

    parsed = Cells()
    parsed.feed(page)
    assert ("div", {"table-wrap"}) in parsed.table_parents
    assert len(parsed.rows) == 6
    metrics = 3  # answer_hit@2, mrr, f1
    for row in parsed.rows:
        assert len(row) == 5 + metrics
        assert all("t" in classes for classes, _ in row[:5])  # id, question, pipeline, answer, top hit
        assert all("v" in classes and "t" not in classes for classes, _ in row[5:])
    long_row = parsed.rows[3]
    assert long_row[1] == ({"t", "q"}, "Q" * LONG)  # the whole question, in a wrapping cell
    assert long_row[3][0] == {"t", "a"} and long_row[3][1].startswith("A" * 150)
    assert "hitcell" in long_row[4][0] and "Z" * 100 in long_row[4][1]


def test_detail_text_wraps(tmp_path):
    page = render_html(long_report(tmp_path))
    rules = css_rules(page)
    chunk = rules[".hit pre"]  # the page's script puts each chunk's text in div.hit > pre
    assert chunk["white-space"] == "pre-wrap" and chunk["overflow-wrap"] == "anywhere"
    assert "add(box, 'pre', chunk.text)" in page and "gold ? 'hit gold' : 'hit'" in page
    assert rules["tr.detail td"]["overflow-wrap"] == "anywhere"  # references and answer lines


LAYOUT_PROBE = """<script>window.addEventListener('load', function () {
  document.getElementById('row-3').click();
  var root = document.documentElement;
  var heads = document.querySelectorAll('#samples thead th');
  var pre = document.querySelector('#samples tr.detail pre');
  var question = document.querySelectorAll('#row-3 td')[1];
  document.body.setAttribute('data-layout', JSON.stringify({
    viewport: root.clientWidth, page: root.scrollWidth,
    lastHeader: heads[heads.length - 1].getBoundingClientRect().right,
    pre: [pre.scrollWidth, pre.clientWidth, pre.getBoundingClientRect().right],
    question: question.getBoundingClientRect().width}));
});</script>"""


@needs_chromium
def test_the_table_fits_1400_px_in_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(long_report(tmp_path)).replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    dom = dump_dom(page, tmp_path, window=(1400, 1000))
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found is not None, dom[-2000:]
    layout = json.loads(found.group(1).replace("&quot;", '"'))
    assert layout["page"] <= layout["viewport"]  # nothing runs off the right edge
    assert layout["lastHeader"] <= layout["viewport"]  # the last metric column (f1) is in sight
    scroll_width, client_width, right = layout["pre"]
    assert scroll_width <= client_width and right <= layout["viewport"]  # the 3,000-character chunk wraps
    assert layout["question"] < 500  # the 2,000-character question wraps within its column


# -- 3. metric vs k: identical series -------------------------------------------------------------------


def series_geometry(svg: str) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    """Per stroke/fill colour: the polyline's points and the circles' centres."""
    root = ET.fromstring(svg)
    lines = {
        line.get("stroke", ""): [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
        for line in root.iter(f"{SVG}polyline")
    }
    markers: dict[str, list[tuple[float, float]]] = {}
    for circle in root.iter(f"{SVG}circle"):
        markers.setdefault(circle.get("fill", ""), []).append((float(circle.get("cx", 0)), float(circle.get("cy", 0))))
    return lines, markers  # type: ignore[return-value]


def legend(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == "legend"]


def test_identical_series_are_drawn_apart_and_named_in_the_legend():
    values = [0.5, 0.75, 0.75]
    svg = line_chart("recall vs k", [1, 3, 5], {"hybrid": values, "basic": values, "dense": [0.1, 0.2, 0.3]})
    lines, markers = series_geometry(svg)
    hybrid, basic = lines["#4e79a7"], lines["#f28e2b"]  # the first two palette colours
    assert len(lines) == 3 and len(hybrid) == len(basic) == 3
    assert not set(hybrid) & set(basic)  # before: the same points, basic drawn over hybrid
    assert markers["#4e79a7"] == hybrid and markers["#f28e2b"] == basic
    for (x1, y1), (x2, y2) in zip(hybrid, basic, strict=True):
        assert 2 <= x2 - x1 <= 6 and 2 <= y1 - y2 <= 6  # a few pixels right and up
    assert legend(svg) == ["hybrid", "basic (= hybrid)", "dense"]
    assert "px apart" in svg


def test_three_equal_series_each_get_their_own_offset():
    svg = line_chart("mrr vs k", [1, 2], {"a": [0.2, 0.4], "b": [0.2, 0.4], "c": [0.2, 0.4]})
    lines, _ = series_geometry(svg)
    starts = sorted(points[0] for points in lines.values())
    assert len(set(starts)) == 3
    assert legend(svg) == ["a", "b (= a)", "c (= a)"]


def test_distinct_series_are_drawn_where_their_values_are():
    svg = line_chart("mrr vs k", [1, 2], {"a": [0.2, 0.4], "b": [0.2, 0.5]})
    lines, _ = series_geometry(svg)
    a, b = lines.values()
    assert a[0] == b[0]  # a shared point is not moved: only whole equal series are
    assert legend(svg) == ["a", "b"] and "px apart" not in svg


def test_the_report_names_equal_pipelines_in_its_vs_k_chart(tmp_path):
    data = make_result(tmp_path).to_dict()
    dense, rag = data["pipelines"]
    rag["aggregates"]["by_k"] = dense["aggregates"]["by_k"]  # two pipelines that retrieve alike
    vs_k = next(svg for svg in charts(data) if "answer_hit vs k" in svg)
    assert legend(vs_k) == ["dense", "rag (= dense)"]


# -- 4. latency on a log scale ----------------------------------------------------------------------------


def bars(svg: str) -> dict[str, float]:
    """Each bar's height by its tooltip."""
    return {
        (rect.find(f"{SVG}title").text or ""): float(rect.get("height", 0))  # type: ignore[union-attr]
        for rect in ET.fromstring(svg).iter(f"{SVG}rect")
        if rect.find(f"{SVG}title") is not None
    }


def ticks(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == "tick" and t.text]


def test_log_scale_bars_are_proportional_to_log10():
    svg = bar_chart(
        "Latency per question",
        ["p50"],
        ["a", "b"],
        {("p50", "a"): 10.0, ("p50", "b"): 1000.0},
        unit="ms",
        log_scale=True,
    )
    heights = bars(svg)
    ten, thousand = heights["a · p50: 10 ms"], heights["b · p50: 1000 ms"]
    assert thousand == pytest.approx(3 * ten, abs=0.15)  # log10(1000/1) = 3 * log10(10/1) above the 1 ms baseline
    assert ticks(svg)[:4] == ["1", "10", "100", "1000"]
    assert "(ms, log scale)" in svg


def test_log_scale_keeps_a_fast_retrieval_readable_next_to_a_slow_generation():
    values = {("retrieval p50", "rag"): 5.0, ("generation p50", "rag"): 3000.0}
    svg = bar_chart("Latency", ["retrieval p50", "generation p50"], ["rag"], values, unit="ms", log_scale=True)
    heights = bars(svg)
    retrieval, generation = heights["rag · retrieval p50: 5 ms"], heights["rag · generation p50: 3000 ms"]
    assert retrieval / generation == pytest.approx(math.log10(5) / math.log10(3000), abs=0.01)  # linear: 0.0017
    assert retrieval > 20
    assert ticks(svg)[:5] == ["1", "10", "100", "1000", "10000"]


def test_log_scale_handles_zero_missing_and_sub_millisecond_values():
    values = {("p50", "a"): 0.0, ("p50", "b"): None, ("p50", "c"): 0.3, ("p50", "d"): 40.0}
    svg = bar_chart("Latency", ["p50"], ["a", "b", "c", "d"], values, unit="ms", log_scale=True)
    heights = bars(svg)
    assert heights["a · p50: 0 ms"] == 1.0  # on the baseline, still visible as a line
    assert not any(title.startswith("b ·") for title in heights)  # missing: no bar
    assert 0 < heights["c · p50: 0.3 ms"] < heights["d · p50: 40 ms"]
    assert ticks(svg)[:4] == ["0.1", "1", "10", "100"]  # from the decade below 0.3 ms to the one above 40
    empty = bar_chart("Latency", ["p50"], ["a"], {("p50", "a"): None}, unit="ms", log_scale=True)
    assert not bars(empty) and "log scale" in empty


def test_the_report_splits_retrieval_and_generation_latency(tmp_path):
    data = make_result(tmp_path).to_dict()
    for sample in data["samples"]:
        sample["timings"] = {"retrieve": 0.005}
        if sample["pipeline"] == "rag":
            sample["timings"]["generate"] = 3.0
    latency = next(svg for svg in charts(data) if "Latency per question" in svg)
    assert "Latency per question (ms, log scale)" in latency
    heights = bars(latency)
    assert heights["rag · retrieval p50: 5 ms"] > 20 and heights["rag · generation p50: 3000 ms"] > 100
    assert heights["dense · retrieval p50: 5 ms"] > 20
    assert not any(title.startswith("dense · generation") for title in heights)  # retrieval only: none
    assert {"total p50", "total p95", "retrieval p50", "generation p50"} <= set(ticks(latency))


def test_a_report_without_stage_timings_charts_the_total_only(tmp_path):
    latency = next(svg for svg in charts(make_result(tmp_path).to_dict()) if "Latency per question" in svg)
    labels = set(ticks(latency))
    assert {"total p50", "total p95"} <= labels and "retrieval p50" not in labels
