"""Reports from synthetic results: JSON round trip, Markdown tables, self-contained HTML, compare."""

from __future__ import annotations

import copy
import json
import re

import pytest

from ragkit.errors import InputError
from ragkit.evaluation.compare import compare_reports, format_comparison
from ragkit.evaluation.html_report import render_html
from ragkit.evaluation.report import load_report, render_markdown, write_reports
from ragkit.evaluation.results import EvalResult, PipelineResult
from ragkit.evaluation.runner import score_samples
from ragkit.evaluation.suite import PipelineRun, Suite

from .helpers import dump_dom, hit, needs_chromium, sample


def make_result(tmp_path) -> EvalResult:
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "q.jsonl").write_text('{"question": "q"}\n')
    suite = Suite.parse(
        {
            "name": "syn",
            "documents": "docs",
            "questions": "q.jsonl",
            "metrics": ["answer_hit", "mrr", "f1"],
            "pipelines": [{"name": "dense", "retrieval_only": True}, {"name": "rag", "config": {}}],
            "k": [1, 2],
        },
        base_dir=tmp_path,
    )
    metrics = suite.build_metrics()
    pipelines = []
    for run in (PipelineRun("dense", True, "dense", 2), PipelineRun("rag", False, "dense", 2)):
        samples = []
        for i in range(3):
            hits = [hit("a.md", 0, 30, "nothing"), hit("a.md", 30, 60, f"answer {i} <b>here</b>")]
            if i == 0:
                hits.reverse()  # q0 finds its answer first
            if i == 2:
                hits[1] = hit("b.md", 0, 30, "nothing either")  # q2 never finds it
            s = sample(
                hits,
                answers=[f"answer {i}"],
                spans=[("a.md", 30, 40)],
                id=f"q{i}",
                pipeline=run.name,
                answer=None if run.retrieval_only else f"answer {i}",
            )
            s.question.question = f"question <script>alert({i})</script>?"
            s.latency = 0.01 * (i + 1)
            if not run.retrieval_only:
                s.usage = {"prompt_tokens": 300, "completion_tokens": 12, "total_tokens": 312}
            samples.append(s)
        if not run.retrieval_only:
            samples[2].error = "UpstreamError: timeout"
        applied = score_samples(metrics, samples, run.retrieval_only)
        pipelines.append(PipelineResult(run, samples, applied, {"answer": 0.1}))
    names = list(dict.fromkeys(n for p in pipelines for n in p.metric_names))
    return EvalResult(
        suite,
        [s.question for s in pipelines[0].samples],
        3,
        pipelines,
        names,
        {"name": "c"},
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:01+00:00",
        1.0,
    )


def test_report_json_is_complete_and_strict(tmp_path):
    data = make_result(tmp_path).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["format"] == "ragkit-eval/1" and data["versions"]["ragkit"]
    assert len(data["samples"]) == 6 and len(data["chunks"]) == 4  # the two "nothing" chunks, two answer chunks
    assert data["metrics"] == ["answer_hit@1", "answer_hit@2", "mrr", "f1"]
    dense, rag = data["pipelines"]
    assert dense["kind"] == "retrieval" and "f1" not in dense["aggregates"]["metrics"]
    assert dense["aggregates"]["by_k"]["answer_hit"] == {"1": 0.333333, "2": 0.666667}
    assert rag["aggregates"]["metrics"]["f1"] == {"mean": 1.0, "scored": 2, "failed": 1}
    assert rag["aggregates"]["tokens"]["total_tokens"] == 312
    second = data["samples"][1]["hits"][1]
    assert data["chunks"][second["chunk_id"]] == {
        "source": "a.md",
        "start": 30,
        "end": 60,
        "text": "answer 1 <b>here</b>",
    }
    rag_q2 = data["samples"][5]
    assert rag_q2["metrics"]["f1"] is None and rag_q2["metric_errors"]["f1"].startswith("the pipeline failed")
    assert data["samples"][0]["metric_details"]["mrr"] == {"first_relevant_rank": 1}
    assert "NaN" not in text


def test_markdown_has_the_summary_and_k_tables(tmp_path):
    md = render_markdown(make_result(tmp_path).to_dict())
    assert "| pipeline | kind | answer_hit@2 | mrr | f1 | errors |" in md  # per-k metrics at the largest k
    assert "| rag | rag | 1.000 (1 failed) | 0.750 (1 failed) | 1.000 (1 failed) | 1 |" in md
    assert "### answer_hit" in md and "| dense | 0.333 | 0.667 |" in md
    assert "## Failures" in md and "pipeline: UpstreamError: timeout" in md


def page_details(page: str) -> dict:
    """The JSON the page's script builds the detail rows from."""
    found = re.search(r'<script type="application/json" id="details">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_html_is_self_contained_escaped_and_has_one_row_per_sample(tmp_path):
    data = make_result(tmp_path).to_dict()
    page = render_html(data)
    assert page.count('<tr class="sample"') == 6 and page.count('<tr class="detail" hidden>') == 6
    assert 'id="row-0" data-index="0"' in page and 'id="row-5" data-index="5"' in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(0)" in page
    assert page.count("<svg") == 4  # metric per pipeline, answer_hit vs k, latency, tokens
    assert not re.search(r"""(src|href)=["']?https?:""", page) and "@import" not in page
    assert page.count('data-failed="1"') == 2  # dense q2 scores 0, rag q2 failed
    assert "<th>answer_hit@2</th>" in page and "<th>answer_hit@1</th>" not in page  # all k in the detail rows
    assert 'id="only-failed"' in page


def test_html_detail_data_holds_each_row_and_every_chunk_once(tmp_path):
    data = make_result(tmp_path).to_dict()
    page = render_html(data)
    assert page.count("<b>here</b>") == 0  # chunk text with markup: escaped in the JSON (\u003c), never raw
    details = page_details(page)
    assert details["chunks"] == data["chunks"]  # each chunk once, whole
    assert len(details["samples"]) == 6
    first = details["samples"][0]
    assert first["metrics"]["answer_hit@1"] == 1.0 and first["references"] == ["answer 0"]
    assert [h["chunk_id"] for h in first["hits"]] == [h["chunk_id"] for h in data["samples"][0]["hits"]]
    assert first["gold_spans"] == [{"source": "a.md", "start": 30, "end": 40}]
    failed = details["samples"][5]  # rag q2
    assert failed["error"] == "UpstreamError: timeout" and failed["metric_errors"]["f1"].startswith("the pipeline")


def test_write_and_load_reports(tmp_path):
    paths = write_reports(make_result(tmp_path), tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["report.html", "report.json", "report.md"]
    assert load_report(paths["json"])["suite"]["name"] == "syn"
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="not a ragkit evaluation report"):
        load_report(tmp_path / "x.json")
    with pytest.raises(InputError, match="does not exist"):
        load_report(tmp_path / "missing.json")


def test_compare_reports_deltas_and_flips(tmp_path):
    before = make_result(tmp_path).to_dict()
    after = copy.deepcopy(before)
    sample = next(s for s in after["samples"] if s["pipeline"] == "dense" and s["id"] == "q1")
    sample["metrics"]["answer_hit@1"] = 1.0
    after["pipelines"][0]["aggregates"]["metrics"]["answer_hit@1"]["mean"] = 2 / 3
    after["pipelines"] = after["pipelines"][:1]
    comparison = compare_reports(before, after)
    assert comparison.only_before == ["rag"]
    delta = next(d for d in comparison.deltas if d.metric == "answer_hit@1")
    assert delta.delta == pytest.approx(1 / 3)
    [flip] = comparison.flips
    assert (flip.pipeline, flip.question_id, flip.metric, flip.improved) == ("dense", "q1", "answer_hit@1", True)
    text = format_comparison(comparison)
    assert "answer_hit@1" in text and "+0.333" in text and "1 flipped" in text and "+ [dense] q1" in text
    assert json.loads(json.dumps(comparison.to_dict()))["flips"][0]["id"] == "q1"


def test_a_long_table_lists_the_failures_first(tmp_path, monkeypatch):
    import ragkit.evaluation.html_report as html_report

    data = make_result(tmp_path).to_dict()
    monkeypatch.setattr(html_report, "MAX_ROWS", 3)
    page = html_report.render_html(data)
    assert page.count('<tr class="sample"') == 3 and page.count('data-failed="1"') == 2
    assert "lists 3 of the 6 rows, the failures first" in page
    details = page_details(page)
    assert len(details["samples"]) == 3
    listed = {h["chunk_id"] for s in details["samples"] for h in s["hits"]}
    assert set(details["chunks"]) == listed < set(data["chunks"])  # only the chunks the listed rows show


def test_json_is_the_same_with_and_without_orjson(tmp_path, monkeypatch):
    result = make_result(tmp_path)
    with_orjson = write_reports(result, tmp_path / "a")
    monkeypatch.setitem(__import__("sys").modules, "orjson", None)  # import orjson now raises ImportError
    without = write_reports(result, tmp_path / "b")
    assert json.loads(with_orjson["json"].read_text(encoding="utf-8")) == json.loads(
        without["json"].read_text(encoding="utf-8")
    )
    pages = [paths["html"].read_text(encoding="utf-8") for paths in (with_orjson, without)]
    assert page_details(pages[0]) == page_details(pages[1])
    assert all("<b>here" not in page and "\\u003cb>here" in page for page in pages)


def test_report_chunks_carry_their_page(tmp_path):
    on_pages = [hit("doc.pdf", 0, 100, "page two text"), hit("doc.pdf", 0, 100, "page three text")]
    on_pages[0].chunk.metadata["page"] = 2
    on_pages[1].chunk.metadata["page"] = 3
    result = make_result(tmp_path)
    result.pipelines[0].samples[0].hits = on_pages
    chunks = result.to_dict()["chunks"]
    assert sorted(c.get("page") for c in chunks.values() if c["source"] == "doc.pdf") == [2, 3]
    assert all("page" not in c for c in chunks.values() if c["source"] == "a.md")


@needs_chromium
def test_the_page_marks_gold_hits_on_the_gold_page_only(tmp_path):
    data = make_result(tmp_path).to_dict()
    first = data["samples"][0]  # dense q0: its first hit overlaps the gold span a.md 30-40
    first["gold_spans"] = [{"source": "a.md", "start": 30, "end": 40, "page": 3}]
    for number, hit_ in zip((3, 2), first["hits"], strict=True):
        data["chunks"][hit_["chunk_id"]]["page"] = number
    page = tmp_path / "report.html"
    page.write_text(render_html(data), encoding="utf-8")
    dom = dump_dom(page, tmp_path, "#row-0")
    assert dom.count('<div class="hit gold">') == 1 and "a.md page 3 chars 30–60" in dom
    first["gold_spans"][0]["page"] = 2  # the overlapping chunk is on page 3: nothing is gold now
    page.write_text(render_html(data), encoding="utf-8")
    assert '<div class="hit gold">' not in dump_dom(page, tmp_path, "#row-0")


def test_report_hits_are_the_one_hit_shape_less_the_text_kept_once_in_chunks(tmp_path):
    """Issue 14 item 13: a report's hit has the hit's one JSON shape (its text and metadata live in ``chunks``)."""
    result = make_result(tmp_path)
    data = result.to_dict()
    first = result.pipelines[0].samples[0]
    expected = [h.to_dict(rank) for rank, h in enumerate(first.hits, 1)]
    for shape in expected:
        del shape["text"], shape["metadata"]
        shape["score"] = round(shape["score"], 6)
    assert data["samples"][0]["hits"] == expected
    assert [h["rank"] for h in expected] == [1, 2] and {"source", "uri", "page", "row"} <= set(expected[0])
    assert all(data["chunks"][h["chunk_id"]]["text"] for h in expected)
