"""The self-contained HTML report: summary, inline SVG charts and a filterable per-question table.

One file, no network: CSS and the few lines of JavaScript are inline, the
charts are SVG drawn in Python (:mod:`ragkit.evaluation.charts`). Each
question row (``tr.sample``) is followed by a hidden detail row (``tr.detail``)
with the retrieved chunks (gold-overlapping ones marked), the references and
each metric's failure reason; clicking a row opens it. A checkbox keeps
only the failures: rows with a pipeline or metric error, or a metric that
scored 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from html import escape
from pathlib import PurePosixPath
from typing import Any

from ragkit.evaluation.charts import bar_chart, line_chart
from ragkit.evaluation.report import format_value, headline_metrics, per_k_metrics, summary_table

MAX_ROWS = 2000
"""Rows in the per-question table at most (failures first past it; a browser slows down past a few thousand)."""
SNIPPET = 400

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
.hit .where{color:#555;font-size:12px}.hit pre{white-space:pre-wrap;margin:4px 0 0;font:12px/1.4 ui-monospace,monospace}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #eee}
svg .grid{stroke:#eee}svg .tick,svg .legend{font-size:11px;fill:#555}svg .chart-title{font-size:13px;font-weight:600}
.controls{margin:8px 0}.tag{font-size:11px;padding:0 4px;border-radius:3px;background:#59a14f;color:#fff}
.error{color:#a33}
#samples td:nth-child(2){min-width:220px}#samples td:nth-child(4){min-width:200px}
#samples td:nth-child(5){min-width:260px}
"""

_JS = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('#samples tr.sample'));
  var box = document.getElementById('only-failed');
  var shown = document.getElementById('shown');
  function apply() {
    var n = 0;
    rows.forEach(function (row) {
      var hide = box.checked && row.getAttribute('data-failed') !== '1';
      row.hidden = hide;
      if (hide) { row.nextElementSibling.hidden = true; row.classList.remove('open'); } else { n += 1; }
    });
    shown.textContent = String(n);
  }
  rows.forEach(function (row) {
    row.addEventListener('click', function () {
      var detail = row.nextElementSibling;
      detail.hidden = !detail.hidden;
      row.classList.toggle('open', !detail.hidden);
    });
  });
  box.addEventListener('change', apply);
  apply();
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


def _is_gold(sample: Mapping[str, Any], chunk: Mapping[str, Any]) -> bool:
    if chunk.get("source") in sample.get("gold_documents", []):
        return True
    return any(
        g["source"] == chunk.get("source") and chunk["start"] < g["end"] and g["start"] < chunk["end"]
        for g in sample.get("gold_spans", [])
    )


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
    latency = {
        (q, p["name"]): (
            None if p["aggregates"]["latency_s"].get(q) is None else p["aggregates"]["latency_s"][q] * 1000
        )
        for p in pipelines
        for q in ("p50", "p95")
    }
    if any(v is not None for v in latency.values()):
        svgs.append(bar_chart("Latency per question", ["p50", "p95"], names, latency, unit="ms"))
    tokens = {
        (kind, p["name"]): p["aggregates"].get("tokens", {}).get(f"{kind}_tokens")
        for p in pipelines
        for kind in ("prompt", "completion")
    }
    if any(v for v in tokens.values()):
        svgs.append(bar_chart("Tokens per question", ["prompt", "completion"], names, tokens))
    return svgs


# -- the per-question table -----------------------------------------------------------------------


def _value_cell(value: float | None, error: str | None, present: bool) -> str:
    if not present:
        return '<td class="v"></td>'
    if value is None:
        return f'<td class="v err" title="{_e(error)}">error</td>'
    css = "zero" if value == 0 else "ok"
    return f'<td class="v {css}">{format_value(value)}</td>'


class _Snippets:
    """Escaped chunk snippets and hit headers, made once per chunk, and other escaped strings that repeat.

    The same chunks come back for many questions, and every row repeats the metric names and hit origins.
    """

    def __init__(self, chunks: Mapping[str, Any]) -> None:
        self.chunks = chunks
        self._made: dict[tuple[str, int], str] = {}
        self.hits: dict[str, tuple[Mapping[str, Any], str, str]] = {}
        self._escaped: dict[Any, str] = {}

    def get(self, chunk_id: str, limit: int) -> str:
        key = (chunk_id, limit)
        if key not in self._made:
            self._made[key] = _e(_short(self.chunks.get(chunk_id, {}).get("text", ""), limit))
        return self._made[key]

    def hit(self, chunk_id: str) -> tuple[Mapping[str, Any], str, str]:
        """The chunk, its header up to the score (``name chars start–end · score ``) and its ``<pre>`` block."""
        made = self.hits.get(chunk_id)
        if made is None:
            chunk = self.chunks.get(chunk_id, {})
            where = _e(_name(chunk.get("source", "")))
            made = (
                chunk,
                f"{where} chars {chunk.get('start')}–{chunk.get('end')} · score ",
                f"<pre>{self.get(chunk_id, SNIPPET)}</pre></div>",
            )
            self.hits[chunk_id] = made
        return made

    def escaped(self, value: Any) -> str:
        """``_e(value)``, remembered (for the few strings every row repeats)."""
        made = self._escaped.get(value)
        if made is None:
            made = self._escaped[value] = _e(value)
        return made


def _detail(sample: Mapping[str, Any], chunks: Mapping[str, Any], snippets: _Snippets, columns: int) -> str:
    parts = [f'<tr class="detail" hidden><td colspan="{columns}">']
    if sample.get("error"):
        parts.append(f'<p class="error"><b>pipeline failed:</b> {_e(sample["error"])}</p>')
    failures = sample.get("metric_errors", {})
    if failures:
        parts.append("<p><b>metrics that could not score:</b></p><ul>")
        parts += [f'<li><code>{_e(n)}</code>: <span class="error">{_e(r)}</span></li>' for n, r in failures.items()]
        parts.append("</ul>")
    escaped = snippets.escaped
    values = " · ".join(f"{escaped(n)} {v:.3f}" for n, v in sample.get("metrics", {}).items() if v is not None)
    if values:
        parts.append(f'<p class="values"><b>metrics:</b> {values}</p>')
    if sample.get("references"):
        parts.append("<p><b>references:</b> " + " · ".join(_e(r) for r in sample["references"]) + "</p>")
    if sample.get("answer") is not None:
        parts.append(f"<p><b>answer:</b> {_e(sample['answer'])}</p>")
    hits = sample.get("hits", [])
    parts.append(f"<p><b>retrieved ({len(hits)}):</b></p>")
    spans = sample.get("gold_spans", [])
    documents = sample.get("gold_documents", [])
    gold_sources = {g["source"] for g in spans}.union(documents)  # a hit from another file is never gold
    made = snippets.hits
    for rank, hit in enumerate(hits, 1):
        chunk_id = hit["chunk_id"]
        chunk, header, pre = made.get(chunk_id) or snippets.hit(chunk_id)
        gold = chunk.get("source") in gold_sources and _is_gold(sample, chunk)
        origin = escaped(hit.get("origin"))
        if gold:
            parts.append(
                f'<div class="hit gold"><div class="where">[{rank}] {header}{hit["score"]} · {origin}'
                f' <span class="tag">gold</span></div>{pre}'
            )
        else:
            parts.append(f'<div class="hit"><div class="where">[{rank}] {header}{hit["score"]} · {origin}</div>{pre}')
    parts.append("</td></tr>")
    return "".join(parts)


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


def sample_rows(data: Mapping[str, Any], names: Sequence[str], samples: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``tr.sample`` + ``tr.detail`` pairs of the per-question table."""
    chunks = data.get("chunks", {})
    snippets = _Snippets(chunks)
    columns = 5 + len(names)
    rows = []
    for sample in samples:
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
        cells = "".join(_value_cell(metrics.get(n), errors.get(n), n in metrics) for n in names)
        rows.append(
            f'<tr class="sample" data-failed="{1 if is_failure(sample, names) else 0}">'
            f"<td>{_e(sample['id'])}</td><td>{_e(sample['question'])}</td><td>{snippets.escaped(sample['pipeline'])}</td>"
            f"<td>{answer_cell}</td><td>{top}</td>{cells}</tr>"
        )
        rows.append(_detail(sample, chunks, snippets, columns))
    return rows


def _markdown_table_to_html(markdown: str) -> str:
    lines = [line.strip().strip("|").split("|") for line in markdown.splitlines() if line.strip()]
    header, body = lines[0], lines[2:]
    html = ["<table><thead><tr>", *(f"<th>{_e(c.strip())}</th>" for c in header), "</tr></thead><tbody>"]
    for row in body:
        html.append("<tr>" + "".join(f"<td>{_e(c.strip())}</td>" for c in row) + "</tr>")
    html.append("</tbody></table>")
    return "".join(html)


def render_html(data: Mapping[str, Any]) -> str:
    """The whole HTML page for a report's data."""
    suite = data.get("suite", {})
    questions = data.get("questions", {})
    names = headline_metrics(data)
    samples = data.get("samples", [])
    shown = shown_samples(data, names, MAX_ROWS)
    rows = sample_rows(data, names, shown)
    total = len(shown)
    note = (
        f'<p class="meta">The table lists {total:,} of the {len(samples):,} rows, the failures first; '
        "every row is in report.json.</p>"
        if len(samples) > total
        else ""
    )
    title = f"Evaluation: {suite.get('name', '?')}"
    header_cells = "".join(f"<th>{_e(n)}</th>" for n in ["id", "question", "pipeline", "answer", "top hit", *names])
    return "".join(
        [
            '<!doctype html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width,initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f'<header><h1>{_e(title)}</h1><p class="meta">Suite {_e(suite.get("file"))} · '
            f"{questions.get('evaluated', 0)} of {questions.get('total', 0)} questions · started "
            f"{_e(data.get('started_at'))} · {data.get('duration_s', 0):.1f} s · ragkit "
            f"{_e(data.get('versions', {}).get('ragkit'))}</p></header>",
            "<h2>Metrics per pipeline</h2>",
            _markdown_table_to_html(summary_table(data)),
            '<h2>Charts</h2><div class="charts">',
            *charts(data),
            "</div><h2>Questions</h2>",
            '<div class="controls"><label><input type="checkbox" id="only-failed"> only failures '
            '(an error, or a metric that scored 0)</label> · <span id="shown">?</span> of '
            f'<span id="total">{total}</span> rows shown · click a row for its retrieved chunks</div>',
            note,
            f'<table id="samples"><thead><tr>{header_cells}</tr></thead><tbody>',
            *rows,
            f"</tbody></table><script>{_JS}</script></body></html>\n",
        ]
    )
