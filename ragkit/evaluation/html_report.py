"""The self-contained HTML report: summary, inline SVG charts and a filterable per-question table.

One file, no network: CSS and the few lines of JavaScript are inline, the
charts are SVG drawn in Python (:mod:`ragkit.evaluation.charts`). Each
question row (``tr.sample``, ``id="row-N"``) is followed by a hidden detail
row (``tr.detail``); clicking the row opens it and shows the retrieved chunks
(gold-overlapping ones marked), the references, the answer, every metric
value and each metric's failure reason. The detail rows are built in the
browser, on first open, from one JSON block in the page (``#details``) that
holds every chunk once: ten hits per question rendered as HTML on the server
made the page several times larger and cost most of the report's writing
time. A link to ``report.html#row-N`` opens that question. A checkbox keeps
only the failures: rows with a pipeline or metric error, or a metric that
scored 0. Text cells (``td.t``) and chunk text wrap anywhere, so a question
without spaces cannot push the metric columns (``td.v``, never wrapped) off
a 1,400 px window; the table scrolls in its own box only as a last resort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from html import escape
from pathlib import PurePosixPath
from typing import Any

from ragkit.evaluation.charts import bar_chart, line_chart
from ragkit.evaluation.report_data import (
    format_value,
    headline_metrics,
    json_bytes,
    per_k_metrics,
    summary_header,
    summary_rows,
)
from ragkit.evaluation.results import percentile

MAX_ROWS = 2000
"""Rows in the per-question table at most (failures first past it; a browser slows down past a few thousand)."""

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1400px;
padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#666;margin:0}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e4e4e4;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f6f6f6;position:sticky;top:0}
td.v{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.zero{background:#fdecea}td.err{background:#fff3cd}td.ok{background:#eef7ee}
tr.sample{cursor:pointer}tr.sample:hover{background:#f4f8ff}tr.sample.open{background:#eaf1ff}
tr.detail td{background:#fafafa;padding:8px 16px}
.hit{margin:6px 0;padding:6px 8px;border-left:3px solid #ccc;background:#fff}
.hit.gold{border-left-color:#59a14f}
.hit .where{color:#555;font-size:12px}
.hit pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0 0;font:12px/1.4 ui-monospace,monospace;
max-height:18em;overflow:auto}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #eee}
svg .grid{stroke:#eee}svg .tick,svg .legend{font-size:11px;fill:#555}svg .chart-title{font-size:13px;font-weight:600}
.controls{margin:8px 0}.tag{font-size:11px;padding:0 4px;border-radius:3px;background:#59a14f;color:#fff}
.error{color:#a33}
.table-wrap{max-width:100%;max-height:85vh;overflow:auto}
#samples td.t{overflow-wrap:anywhere}
#samples td.id{max-width:9em}#samples td.pipe{max-width:8em}
#samples td.q{min-width:180px;max-width:26em}#samples td.a{min-width:180px;max-width:26em}
#samples td.hitcell{min-width:200px;max-width:24em}
#samples th{white-space:nowrap}
tr.detail td{overflow-wrap:anywhere}tr.detail td p{max-width:110ch}
"""

_JS = """
(function () {
  var data = JSON.parse(document.getElementById('details').textContent);
  var rows = Array.prototype.slice.call(document.querySelectorAll('#samples tr.sample'));
  var box = document.getElementById('only-failed');
  var shown = document.getElementById('shown');
  function add(parent, tag, text, css) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (css) { node.className = css; }
    parent.appendChild(node);
    return node;
  }
  function line(cell, label, text, css) {
    var p = add(cell, 'p');
    add(p, 'b', label);
    p.appendChild(document.createTextNode(' '));
    add(p, 'span', text, css);
    return p;
  }
  function fileName(source) { return String(source || '').split('/').pop() || String(source); }
  function isGold(d, chunk) {
    if ((d.gold_documents || []).indexOf(chunk.source) >= 0) { return true; }
    return (d.gold_spans || []).some(function (g) {
      return g.source === chunk.source && chunk.start < g.end && g.start < chunk.end &&
        (g.page === undefined || g.page === null || g.page === chunk.page);
    });
  }
  function build(cell, d) {
    if (d.error) { line(cell, 'pipeline failed:', d.error, 'error'); }
    var failed = Object.keys(d.metric_errors || {});
    if (failed.length) {
      add(add(cell, 'p'), 'b', 'metrics that could not score:');
      var list = add(cell, 'ul');
      failed.forEach(function (name) {
        var item = add(list, 'li');
        add(item, 'code', name);
        item.appendChild(document.createTextNode(': '));
        add(item, 'span', d.metric_errors[name], 'error');
      });
    }
    var values = Object.keys(d.metrics || {}).filter(function (name) { return d.metrics[name] !== null; })
      .map(function (name) { return name + ' ' + d.metrics[name].toFixed(3); });
    if (values.length) { line(cell, 'metrics:', values.join(' \u00b7 ')).className = 'values'; }
    if (d.references && d.references.length) { line(cell, 'references:', d.references.join(' \u00b7 ')); }
    if (d.answer !== null && d.answer !== undefined) {
      line(cell, d.answer_cached ? 'answer (replayed from the answer cache):' : 'answer:', d.answer);
    }
    var hits = d.hits || [];
    add(add(cell, 'p'), 'b', 'retrieved (' + hits.length + '):');
    hits.forEach(function (hit, i) {
      var chunk = data.chunks[hit.chunk_id] || {};
      var gold = isGold(d, chunk);
      var box = add(cell, 'div', null, gold ? 'hit gold' : 'hit');
      var place = fileName(chunk.source) + (chunk.page !== undefined ? ' page ' + chunk.page : '');
      var where = add(box, 'div', '[' + (i + 1) + '] ' + place + ' chars ' + chunk.start + '\\u2013' + chunk.end +
        ' \\u00b7 score ' + hit.score + ' \\u00b7 ' + hit.origin + ' ', 'where');
      if (gold) { add(where, 'span', 'gold', 'tag'); }
      add(box, 'pre', chunk.text);
    });
  }
  function open(row, show) {
    var detail = row.nextElementSibling;
    if (show && !detail.firstChild.hasChildNodes()) {
      build(detail.firstChild, data.samples[Number(row.getAttribute('data-index'))]);
    }
    detail.hidden = !show;
    row.classList.toggle('open', show);
  }
  function apply() {
    var n = 0;
    rows.forEach(function (row) {
      var hide = box.checked && row.getAttribute('data-failed') !== '1';
      row.hidden = hide;
      if (hide) { open(row, false); } else { n += 1; }
    });
    shown.textContent = String(n);
  }
  rows.forEach(function (row) {
    row.addEventListener('click', function () { open(row, row.nextElementSibling.hidden); });
  });
  function follow() {
    var row = location.hash && document.getElementById(location.hash.slice(1));
    if (row && row.classList.contains('sample')) { open(row, true); row.scrollIntoView(); }
  }
  box.addEventListener('change', apply);
  window.addEventListener('hashchange', follow);
  apply();
  follow();
})();
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _short(text: str | None, limit: int) -> str:
    text = text or ""
    if len(text) > 2 * limit:  # collapse a prefix only: it collapses to a prefix of the whole text's collapse
        head = " ".join(text[: 2 * limit].split())
        if len(head) > limit:
            return head[: limit - 1] + "…"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@lru_cache(maxsize=4096)
def _name(source: str) -> str:
    return PurePosixPath(source).name or source


# -- charts ---------------------------------------------------------------------------------


def charts(data: Mapping[str, Any]) -> list[str]:
    """The SVG charts: metric per pipeline, metric vs k, latency and tokens per pipeline."""
    pipelines = data.get("pipelines", [])
    names = [p["name"] for p in pipelines]
    svgs = []
    headline = headline_metrics(data)[:10]
    if headline:
        values = {
            (m, p["name"]): p["aggregates"]["metrics"].get(m, {}).get("mean") for p in pipelines for m in headline
        }
        svgs.append(bar_chart("Metric per pipeline (mean)", headline, names, values, y_max=1.0))
    for base, ks in per_k_metrics(data).items():
        series = {
            p["name"]: [p["aggregates"]["by_k"][base].get(str(k)) for k in ks]
            for p in pipelines
            if base in p["aggregates"].get("by_k", {})
        }
        if series:
            svgs.append(line_chart(f"{base} vs k", ks, series))
    latency = latency_ms(data)
    if any(v is not None for v in latency.values()):
        groups = list(dict.fromkeys(group for group, _ in latency))
        svgs.append(bar_chart("Latency per question", groups, names, latency, unit="ms", log_scale=True))
    tokens = {
        (kind, p["name"]): p["aggregates"].get("tokens", {}).get(f"{kind}_tokens")
        for p in pipelines
        for kind in ("prompt", "completion")
    }
    if any(v for v in tokens.values()):
        svgs.append(bar_chart("Tokens per question", ["prompt", "completion"], names, tokens))
    return svgs


STAGE_TIMINGS = (("retrieval p50", "retrieve"), ("generation p50", "generate"))
"""The latency chart's per-stage groups and the sample timing each is the median of."""


def latency_ms(data: Mapping[str, Any]) -> dict[tuple[str, str], float | None]:
    """The latency chart's bars in milliseconds, keyed ``(group, pipeline)``.

    ``total p50`` and ``total p95`` from each pipeline's aggregates, then, where the samples timed them,
    the median retrieval (``retrieve``) and generation (``generate``) time of the questions that did not fail.
    """
    pipelines = data.get("pipelines", [])
    values: dict[tuple[str, str], float | None] = {}
    for q in ("p50", "p95"):
        for p in pipelines:
            seconds = p.get("aggregates", {}).get("latency_s", {}).get(q)
            values[(f"total {q}", p["name"])] = None if seconds is None else seconds * 1000
    timed: dict[tuple[str, str], list[float]] = {}
    for sample in data.get("samples", []):
        if sample.get("error"):
            continue
        timings = sample.get("timings") or {}
        for group, key in STAGE_TIMINGS:
            if timings.get(key) is not None:
                timed.setdefault((group, sample["pipeline"]), []).append(timings[key])
    for group, _ in STAGE_TIMINGS:
        if any(g == group for g, _ in timed):
            for p in pipelines:
                median = percentile(timed.get((group, p["name"]), []), 0.5)
                values[(group, p["name"])] = None if median is None else median * 1000
    return values


# -- the per-question table -----------------------------------------------------------------------


def _value_cell(value: float | None, error: str | None, present: bool) -> str:
    if not present:
        return '<td class="v"></td>'
    if value is None:
        return f'<td class="v err" title="{_e(error)}">error</td>'
    css = "zero" if value == 0 else "ok"
    return f'<td class="v {css}">{format_value(value)}</td>'


class _Snippets:
    """Escaped chunk snippets for the table and escaped strings that every row repeats, each made once.

    The same chunks come back for many questions.
    """

    def __init__(self, chunks: Mapping[str, Any]) -> None:
        self.chunks = chunks
        self._made: dict[tuple[str, int], str] = {}
        self._escaped: dict[Any, str] = {}

    def get(self, chunk_id: str, limit: int) -> str:
        """The chunk's text collapsed to ``limit`` characters, escaped for HTML."""
        key = (chunk_id, limit)
        if key not in self._made:
            self._made[key] = _e(_short(self.chunks.get(chunk_id, {}).get("text", ""), limit))
        return self._made[key]

    def escaped(self, value: Any) -> str:
        """``_e(value)``, remembered (for the few strings every row repeats)."""
        made = self._escaped.get(value)
        if made is None:
            made = self._escaped[value] = _e(value)
        return made


DETAIL_FIELDS = (
    "error",
    "metric_errors",
    "metrics",
    "references",
    "answer",
    "answer_cached",
    "hits",
    "gold_spans",
    "gold_documents",
)
"""What a detail row shows of a sample; the page's script marks the gold hits and shortens nothing."""


def detail_data(data: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The page's ``#details`` JSON: each listed sample's :data:`DETAIL_FIELDS`, and the chunks their hits name.

    The values are the report's own objects, not copies: serialising them is the only cost.
    """
    chunks = data.get("chunks", {})
    if len(samples) < len(data.get("samples", [])):
        named = {hit["chunk_id"] for sample in samples for hit in sample.get("hits", [])}
        chunks = {chunk_id: chunk for chunk_id, chunk in chunks.items() if chunk_id in named}
    return {"chunks": chunks, "samples": [{key: sample.get(key) for key in DETAIL_FIELDS} for sample in samples]}


def _script_json(data: Any) -> bytes:
    """``data`` as UTF-8 JSON that is safe inside ``<script>``: every ``<`` escaped (it only occurs in strings)."""
    return json_bytes(data).replace(b"<", b"\\u003c")


def is_failure(sample: Mapping[str, Any], shown: Sequence[str]) -> bool:
    """A pipeline error, a metric that could not score, or a shown metric that scored 0."""
    if sample.get("error") or sample.get("metric_errors"):
        return True
    metrics = sample.get("metrics", {})
    return any(metrics.get(n) == 0 for n in shown)


def shown_samples(data: Mapping[str, Any], names: Sequence[str], limit: int = MAX_ROWS) -> list[Mapping[str, Any]]:
    """The samples the table lists: all of them up to ``limit``; past it the failures first, in report order."""
    samples = data.get("samples", [])
    if len(samples) <= limit:
        return list(samples)
    failing = [i for i, s in enumerate(samples) if is_failure(s, names)][:limit]
    chosen = set(failing)
    for i in range(len(samples)):
        if len(chosen) >= limit:
            break
        chosen.add(i)
    return [samples[i] for i in sorted(chosen)]


def sample_rows(
    data: Mapping[str, Any], names: Sequence[str], samples: Sequence[Mapping[str, Any]]
) -> tuple[list[str], dict[str, Any]]:
    """The ``tr.sample`` + (empty) ``tr.detail`` pairs of the per-question table, and the detail rows' data."""
    chunks = data.get("chunks", {})
    snippets = _Snippets(chunks)
    columns = 5 + len(names)
    empty_detail = f'<tr class="detail" hidden><td colspan="{columns}"></td></tr>'
    cell = lru_cache(maxsize=4096)(_value_cell)  # values repeat (0.0, 1.0, 0.5, ...) across rows and metrics
    rows = []
    for index, sample in enumerate(samples):
        hits = sample.get("hits", [])
        top = ""
        if hits:
            source = chunks.get(hits[0]["chunk_id"], {}).get("source", "")
            top = f"<b>{_e(_name(source))}</b> {snippets.get(hits[0]['chunk_id'], 120)}"
        answer = sample.get("answer")
        answer_cell = _e(_short(answer, 200)) if answer is not None else '<span class="meta">retrieval only</span>'
        if sample.get("error"):
            answer_cell = f'<span class="error">failed: {_e(_short(sample["error"], 160))}</span>'
        metrics = sample.get("metrics", {})
        errors = sample.get("metric_errors", {})
        cells = "".join(cell(metrics.get(n), errors.get(n), n in metrics) for n in names)
        rows.append(
            f'<tr class="sample" id="row-{index}" data-index="{index}" '
            f'data-failed="{1 if is_failure(sample, names) else 0}">'
            f'<td class="t id">{_e(sample["id"])}</td><td class="t q">{_e(sample["question"])}</td>'
            f'<td class="t pipe">{snippets.escaped(sample["pipeline"])}</td>'
            f'<td class="t a">{answer_cell}</td><td class="t hitcell">{top}</td>{cells}</tr>'
        )
        rows.append(empty_detail)
    return rows, detail_data(data, samples)


def summary_html(data: Mapping[str, Any], names: list[str]) -> str:
    """The summary table (the Markdown report's first table) as an HTML table."""
    html = ["<table><thead><tr>", *(f"<th>{_e(c)}</th>" for c in summary_header(names)), "</tr></thead><tbody>"]
    for row in summary_rows(data, names):
        html.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    html.append("</tbody></table>")
    return "".join(html)


def render_html(data: Mapping[str, Any]) -> str:
    """The whole HTML page for a report's data."""
    return render_html_bytes(data).decode("utf-8")


def render_html_bytes(data: Mapping[str, Any]) -> bytes:
    """:func:`render_html` as UTF-8 (what :func:`~ragkit.evaluation.report.write_reports` writes).

    The detail data, most of the page, stays bytes from the JSON encoder to the file.
    """
    suite = data.get("suite", {})
    questions = data.get("questions", {})
    names = headline_metrics(data)
    samples = data.get("samples", [])
    shown = shown_samples(data, names, MAX_ROWS)
    rows, details = sample_rows(data, names, shown)
    total = len(shown)
    note = (
        f'<p class="meta">The table lists {total:,} of the {len(samples):,} rows, the failures first; '
        "every row is in report.json.</p>"
        if len(samples) > total
        else ""
    )
    title = f"Evaluation: {suite.get('name', '?')}"
    header_cells = "".join(f"<th>{_e(n)}</th>" for n in ["id", "question", "pipeline", "answer", "top hit", *names])
    head = "".join(
        [
            '<!doctype html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width,initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f'<header><h1>{_e(title)}</h1><p class="meta">Suite {_e(suite.get("file"))} · '
            f"{questions.get('evaluated', 0)} of {questions.get('total', 0)} questions · started "
            f"{_e(data.get('started_at'))} · {data.get('duration_s', 0):.1f} s · ragkit "
            f"{_e(data.get('versions', {}).get('ragkit'))}</p></header>",
            "<h2>Metrics per pipeline</h2>",
            summary_html(data, names),
            '<h2>Charts</h2><div class="charts">',
            *charts(data),
            "</div><h2>Questions</h2>",
            '<div class="controls"><label><input type="checkbox" id="only-failed"> only failures '
            '(an error, or a metric that scored 0)</label> · <span id="shown">?</span> of '
            f'<span id="total">{total}</span> rows shown · click a row for its retrieved chunks</div>',
            note,
            f'<div class="table-wrap"><table id="samples"><thead><tr>{header_cells}</tr></thead><tbody>',
            *rows,
            '</tbody></table></div><script type="application/json" id="details">',
        ]
    )
    tail = f"</script><script>{_JS}</script></body></html>\n"
    return b"".join([head.encode("utf-8"), _script_json(details), tail.encode("utf-8")])
