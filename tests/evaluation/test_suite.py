"""The suite format: every mistake is one ConfigError naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ragkit.errors import ConfigError
from ragkit.evaluation.questions import draw_sample, load_questions
from ragkit.evaluation.suite import Suite, load_suite

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "evaluation" / "suites"
SQUAD = ROOT.parent / "shared" / "datasets" / "squad-dev"


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nThe Denver Broncos won Super Bowl 50.\n", encoding="utf-8")
    rows = [
        {
            "id": "q1",
            "question": "Who won?",
            "answers": ["Denver Broncos"],
            "gold_spans": [{"source": "a.md", "start": 5, "end": 42}],
        },
        {"question": "Which game?", "answers": ["Super Bowl 50"], "gold_documents": ["a.md"]},
    ]
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return tmp_path


def write_suite(folder: Path, **changes: object) -> Path:
    data: dict[str, object] = {
        "name": "t",
        "documents": "docs",
        "questions": "q.jsonl",
        "pipelines": [{"name": "dense", "retrieval_only": True}],
        "metrics": ["recall", "mrr"],
        "k": [1, 5],
    }
    data.update(changes)
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    return str(info.value)


def test_a_valid_suite_resolves_paths_pipelines_and_metrics(folder):
    suite = load_suite(
        write_suite(
            folder,
            pipelines=[
                {"name": "dense", "retrieval_only": True},
                "basic",
                {"name": "short", "recipe": "basic", "config": {"answer": {"max_tokens": 8}}},
            ],
        )
    )
    assert suite.documents_dir == (folder / "docs").resolve()
    assert suite.questions_file == (folder / "q.jsonl").resolve()
    runs = {r.name: r for r in suite.pipeline_runs()}
    assert runs["dense"].retrieval_only and runs["dense"].top_k == 5 and runs["dense"].mode == "dense"
    assert runs["basic"].config.answer.max_tokens == 256
    assert runs["short"].config.answer.max_tokens == 8 and runs["short"].config.retrieval.min_score == 0.2
    assert [m.name for m in suite.build_metrics()] == ["recall@1", "recall@5", "mrr"]


def test_missing_suite_file():
    message = error_of(Path("/nonexistent/suite.yaml"))
    assert message == "suite file /nonexistent/suite.yaml does not exist"


def test_missing_documents_folder_and_questions_file(folder):
    assert "documents.path: folder" in error_of(write_suite(folder, documents="nope"))
    assert "/nope" in error_of(write_suite(folder, documents="nope"))
    message = error_of(write_suite(folder, questions="missing.jsonl"))
    assert str(folder / "suite.yaml") in message and "questions.path: file" in message and "missing.jsonl" in message


def test_unknown_metric_lists_known_metrics(folder):
    message = error_of(write_suite(folder, metrics=["recall", "bleu-ish"]))
    assert str(folder / "suite.yaml") in message
    assert "metrics[1]: unknown metric 'bleu-ish'; known metrics:" in message and "ndcg" in message


def test_k_below_one(folder):
    message = error_of(write_suite(folder, k=[5, 0]))
    assert str(folder / "suite.yaml") in message and "k.1: Input should be greater than or equal to 1" in message


def test_unknown_pipeline_lists_pipeline_recipes(folder):
    message = error_of(write_suite(folder, pipelines=["basik"]))
    assert "pipelines[0] (basik): unknown pipeline 'basik'; known pipeline recipes: " in message
    known = message.split("known pipeline recipes:")[1].split("(")[0]
    assert "basic" in known and "default" not in known  # default.yaml is a collection recipe


def test_other_mistakes_name_their_field(folder):
    assert "pipelines[0] (x): unknown pipeline 'nope'" in error_of(
        write_suite(folder, pipelines=[{"name": "x", "retrieval_only": True, "recipe": "nope"}])
    )
    assert "pipeline names must be unique; repeated: basic" in error_of(
        write_suite(folder, pipelines=["basic", "basic"])
    )
    assert "pipelines[0] (p): config: answer.max_tokens" in error_of(
        write_suite(folder, pipelines=[{"name": "p", "config": {"answer": {"max_tokens": 0}}}])
    )
    assert "metrics: List should have at least 1 item" in error_of(write_suite(folder, metrics=[]))
    assert "colour: Extra inputs are not permitted" in error_of(write_suite(folder, colour="red"))
    assert "sample: Input should be greater than or equal to 1" in error_of(write_suite(folder, sample=0))


def test_question_file_errors_name_the_line(folder):
    (folder / "q.jsonl").write_text('{"question": "ok", "answers": ["a"]}\n{"question": "", "answers": "a"}\n')
    message = error_of(write_suite(folder))
    assert "q.jsonl line 2:" in message and "question:" in message and "answers:" in message
    (folder / "q.jsonl").write_text('{"question": "q", "gold_spans": [{"source": "zz.md", "start": 0, "end": 5}]}\n')
    assert "q.jsonl line 1: gold_spans.0.source: no file 'zz.md' in the documents folder" in error_of(
        write_suite(folder)
    )
    (folder / "q.jsonl").write_text('{"question": "q", "gold_spans": [{"source": "a.md", "start": 9, "end": 5}]}\n')
    assert "line 1: gold_spans.0: Value error, end (5) must be greater than start (9)" in error_of(write_suite(folder))
    (folder / "q.jsonl").write_text("not json\n")
    assert "q.jsonl line 1: not valid JSON" in error_of(write_suite(folder))
    (folder / "q.jsonl").write_text("\n")
    assert "holds no questions" in error_of(write_suite(folder))


def test_questions_resolve_gold_sources_like_chunk_sources(folder):
    questions = load_questions(folder / "q.jsonl", folder / "docs")
    source = "a.md"  # relative to the documents folder, as the ingest names it
    assert questions[0].gold_spans[0].source == source and questions[0].gold_spans[0].end == 42
    assert questions[1].id == "line-2" and questions[1].gold_documents == [source]


def test_source_id_names_a_file_as_the_ingest_of_its_folder_does(tmp_path, monkeypatch):
    """Other frameworks' file paths (absolute, relative to the CWD, through a symlinked folder) become the ids the
    ingest gives the same files, so their hits compare with gold sources (the eval benchmark relies on it)."""
    from ragkit.evaluation.questions import source_id
    from ragkit.loaders.discovery import discover

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("A\n", encoding="utf-8")
    (docs / "sub" / "b.md").write_text("B\n", encoding="utf-8")
    (tmp_path / "link").symlink_to(docs, target_is_directory=True)
    ingested = sorted(f.source for f in discover(docs))
    assert ingested == ["a.md", "sub/b.md"]
    monkeypatch.chdir(tmp_path)
    named = [
        source_id(docs / "a.md", docs),  # absolute (LlamaIndex's file_path)
        source_id("docs/sub/b.md", "docs"),  # relative to the CWD (LangChain's source for a relative folder)
        source_id((docs / "a.md").resolve(), tmp_path / "link"),  # resolved file, folder given through a link
        source_id(tmp_path / "link" / "sub" / "b.md", docs),  # file named through the link, the real folder
    ]
    assert named == ["a.md", "sub/b.md", "a.md", "sub/b.md"]
    assert source_id(tmp_path / "q.md", docs) == (tmp_path / "q.md").resolve().as_posix()  # outside: absolute


def test_squad_dev_format_is_converted_on_the_fly(tmp_path):
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "d.md").write_text("# D\n\nParagraph one.\n", encoding="utf-8")
    row = {
        "id": "s1",
        "question": "What?",
        "answers": [{"text": "one", "start": 15}, {"text": "one", "start": 15}, {"text": "Paragraph one", "start": 5}],
        "document": "documents/d.md",
        "paragraph": 0,
        "paragraph_start": 5,
        "paragraph_end": 19,
    }
    (tmp_path / "questions.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    [q] = load_questions(tmp_path / "questions.jsonl", tmp_path / "documents", "squad-dev")
    assert q.answers == ["one", "Paragraph one"]
    assert q.gold_spans[0].start == 5 and q.gold_spans[0].end == 19
    assert q.gold_spans[0].source == "d.md"


def test_sampling_is_deterministic_and_keeps_file_order(folder):
    questions = load_questions(folder / "q.jsonl", folder / "docs") * 1
    many = [q for _ in range(20) for q in questions]
    first = draw_sample(many, 7, seed=3)
    assert first == draw_sample(many, 7, seed=3) and len(first) == 7
    assert draw_sample(many, None, 0) == many and draw_sample(many, 100, 0) == many


def test_overrides_pick_pipelines_and_sample(folder):
    suite = load_suite(
        write_suite(
            folder,
            pipelines=[
                {"name": "dense", "retrieval_only": True},
                {"name": "lex", "retrieval_only": True, "mode": "lexical"},
            ],
        )
    )
    assert [p.name for p in suite.with_overrides(sample=3, pipelines=["lex"]).pipelines] == ["lex"]
    assert suite.with_overrides(sample=3).sample == 3
    with pytest.raises(ConfigError, match=r"no pipeline named 'bm25' in this suite \(it has: dense, lex\)"):
        suite.with_overrides(pipelines=["bm25"])


def test_inline_suite_in_python(folder):
    suite = Suite.parse(
        {
            "name": "py",
            "documents": "docs",
            "questions": "q.jsonl",
            "pipelines": [{"name": "d", "retrieval_only": True}],
            "metrics": ["mrr"],
        },
        base_dir=folder,
    )
    assert suite.check().documents_dir == (folder / "docs").resolve()


def test_shipped_smoke_suite_is_valid():
    suite = load_suite(SUITES / "smoke.yaml")
    assert [p.name for p in suite.pipelines] == ["dense", "lexical", "basic"]
    questions = load_questions(suite.questions_file, suite.documents_dir, suite.questions.format)
    assert len(questions) == 10 and all(q.gold_spans and q.answers for q in questions)
    for q in questions:  # every reference answer lies inside its gold paragraph
        span = q.gold_spans[0]
        text = (suite.documents_dir / span.source).read_text(encoding="utf-8")[span.start : span.end]
        assert any(a in text for a in q.answers), q.id


@pytest.mark.skipif(not (SQUAD / "questions.jsonl").is_file(), reason=f"the squad-dev data set is not at {SQUAD}")
def test_shipped_squad_dev_suite_is_valid():
    suite = load_suite(SUITES / "squad-dev.yaml")
    questions = load_questions(suite.questions_file, suite.documents_dir, suite.questions.format)
    assert len(questions) == 10565
    q = questions[0]
    text = (suite.documents_dir / q.gold_spans[0].source).read_text(encoding="utf-8")
    assert "Denver Broncos" in text[q.gold_spans[0].start : q.gold_spans[0].end]
    assert q.answers == ["Denver Broncos"]
