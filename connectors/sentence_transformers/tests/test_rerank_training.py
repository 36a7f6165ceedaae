"""Training a cross-encoder (``train_cross_encoder`` and ``ragkit rerank train``) on squad-dev questions."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from ragkit_sentence_transformers.rerank_training import (
    RankingFigures,
    label_candidate,
    ranking_figures,
    ranking_verdict,
    read_questions,
    split_questions,
)
from test_cross_encoder_reranker import COLLECTION, trained_reranker
from typer.testing import CliRunner

from ragkit.evaluation.sample import EvalQuestion, GoldSpan
from ragkit.query import build_stage
from ragkit.rerank_cli import rerank_app
from ragkit.schema import Chunk

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    return trained_reranker(tmp_path_factory)


# -- the pieces ------------------------------------------------------------------------------------


def test_the_held_out_split_is_by_question_deterministic_and_disjoint():
    questions = [EvalQuestion(id=f"q{i}", question=f"question {i}") for i in range(50)]
    train, held = split_questions(questions, 0.2, seed=7)
    assert len(held) == 10 and len(train) == 40
    assert not {q.id for q in train} & {q.id for q in held}
    assert split_questions(questions, 0.2, seed=7) == (train, held)
    assert split_questions(questions, 0.2, seed=8)[1] != held
    assert split_questions(questions, 0.0, seed=7) == (questions, [])


def _chunk(text: str, start: int = 0, source: str = "/docs/a.md") -> Chunk:
    return Chunk(id=f"c{start}", document_id="d", source=source, text=text, start=start, end=start + len(text))


def test_a_candidate_is_positive_when_it_holds_an_answer_and_unsure_in_the_gold_span_without_one():
    question = EvalQuestion(
        id="q", question="Who won?", answers=["Denver  Broncos"], gold_spans=[GoldSpan("/docs/a.md", 0, 200)]
    )
    assert label_candidate(question, _chunk("The denver broncos won the game.")) is True
    assert label_candidate(question, _chunk("The halftime show was loud.", start=100)) is None
    assert label_candidate(question, _chunk("The halftime show was loud.", start=500)) is False
    no_answers = EvalQuestion(id="q2", question="Where?", gold_spans=[GoldSpan("/docs/a.md", 0, 200)])
    assert label_candidate(no_answers, _chunk("anything", start=150)) is True
    assert label_candidate(no_answers, _chunk("anything", start=300)) is False


def test_ranking_figures():
    figures = ranking_figures([[True, False], [False, True], [False] * 6 + [True], [False, None]])
    assert figures.questions == 4
    assert figures.hit_at_1 == 0.25
    assert figures.hit_at_5 == 0.5
    assert figures.mrr == pytest.approx((1 + 0.5 + 1 / 7) / 4, abs=1e-4)


def test_the_verdict_compares_reranked_mrr_with_retrieval_order():
    retrieval = ranking_figures([[True, False], [False, True]])  # MRR 0.75
    assert ranking_verdict(retrieval, ranking_figures([[True, False], [True, False]])) == "better"
    assert ranking_verdict(retrieval, ranking_figures([[False, True], [False, True]])) == "worse"
    assert ranking_verdict(retrieval, retrieval) == "same"


def test_squad_dev_questions_read_with_a_sample(trained):
    questions = read_questions(trained["questions"], "squad-dev", sample=5, seed=1)
    assert len(questions) == 5 and all(q.answers and q.gold_spans for q in questions)
    # gold sources are named as the ingest of squad-dev's documents/ folder names its files
    assert all("/" not in span.source for q in questions for span in q.gold_spans), questions[0].gold_spans


def test_gold_sources_that_name_none_of_the_collections_sources_are_refused(trained, tmp_path):
    """A documents folder other than the one ingested would make every gold passage a negative: refused."""
    runner = CliRunner()
    result = runner.invoke(
        rerank_app,
        ["train", "--questions", trained["questions"], "--out", str(tmp_path / "m"), "--store-dir", trained["store"],
         "-c", COLLECTION, "--format", "squad-dev", "--documents", str(Path(trained["questions"]).parent)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "match none of collection" in result.stderr and "--documents" in result.stderr
    assert "documents/" in result.stderr  # the wrong ids are shown
    assert not (tmp_path / "m").exists()


# -- a training run --------------------------------------------------------------------------------


def test_the_report_holds_out_questions_it_never_trained_on(trained):
    report = trained["report"]
    held, train = set(report["held_out_ids"]), set(report["train_ids"])
    assert held and train and not held & train
    assert report["held_out_questions"] == len(held) and report["train_questions"] == len(train)
    assert report["questions"] == len(held) + len(train)
    assert len(held) == round(report["questions"] * 0.2)
    assert report["positives"] > 0 and report["negatives"] > 0
    assert report["pairs"] == report["positives"] + report["negatives"]
    assert report["steps"] == report["planned_steps"] == 3
    for side in ("before", "after"):
        figures = report[side]
        assert figures["questions"] == len(held)
        assert 0 <= figures["hit_at_1"] <= figures["hit_at_5"] <= 1
    assert report["source"]["format"] == "squad-dev"
    assert report["options"]["max_steps"] == 3
    assert report["verdict"] == ranking_verdict(RankingFigures(**report["before"]), RankingFigures(**report["after"]))


def test_a_model_measured_worse_than_retrieval_warns_when_loaded(trained, tmp_path, caplog):
    folder = tmp_path / "worse"
    shutil.copytree(trained["folder"], folder)
    report = json.loads((folder / "ragkit-rerank.json").read_text(encoding="utf-8"))
    report["before"]["mrr"], report["after"]["mrr"], report["verdict"] = 0.88, 0.12, "worse"
    (folder / "ragkit-rerank.json").write_text(json.dumps(report), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="ragkit_sentence_transformers.reranker"):
        build_stage({"type": "cross-encoder", "model": str(folder), "device": "cpu"}).score_pairs([("q", "p")])
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("0.880 in retrieval order, 0.120 reranked" in m and "WORSE than retrieval" in m for m in warned)


def test_the_saved_folder_loads_as_a_stage(trained):
    folder = Path(trained["folder"])
    assert (folder / "ragkit-rerank.json").is_file() and (folder / "config.json").is_file()
    stage = build_stage({"type": "cross-encoder", "model": str(folder), "device": "cpu"})
    scores = stage.score_pairs(
        [
            ("Which team won Super Bowl 50?", "The Denver Broncos defeated the Carolina Panthers 24-10."),
            ("Which team won Super Bowl 50?", "The Normans were descended from Norse raiders."),
        ]
    )
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    assert stage._model().max_length == 96  # the training max_length is saved as the model's own


# -- the command -----------------------------------------------------------------------------------


def test_rerank_train_command_trains_and_prints_json(trained, tmp_path):
    out = tmp_path / "cli-model"
    args = ["train", "-c", COLLECTION, "--questions", trained["questions"], "--format", "squad-dev", "--out", str(out)]
    args += ["--store-dir", trained["store"], "--sample", "12", "--max-steps", "2", "--batch-size", "8", "--json"]
    result = CliRunner().invoke(rerank_app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["steps"] == 2 and report["questions"] == 12
    assert json.loads((out / "ragkit-rerank.json").read_text())["steps"] == 2
    assert build_stage({"type": "cross-encoder", "model": str(out)}).to_config()["model"] == str(out)

    # a second run may replace a folder the trainer made, but never someone else's folder
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_bytes(b"\xff")
    args[args.index(str(out))] = str(stranger)
    refused = CliRunner().invoke(rerank_app, args)
    assert refused.exit_code == 4
    assert "photos is not empty" in refused.stderr and "Traceback" not in refused.output
    assert (stranger / "cat.jpg").exists()


def test_rerank_train_errors_are_one_line(trained, tmp_path):
    runner = CliRunner()
    base = ["train", "--questions", trained["questions"], "--out", str(tmp_path / "m"), "--store-dir", trained["store"]]
    missing = runner.invoke(rerank_app, [*base, "-c", "nope"])
    assert missing.exit_code == 3 and "collection 'nope' does not exist" in missing.stderr
    bad_format = runner.invoke(rerank_app, [*base, "-c", COLLECTION, "--format", "csv"])
    assert bad_format.exit_code == 2 and "--format" in bad_format.stderr
    no_file = [*base, "-c", COLLECTION]
    no_file[no_file.index(trained["questions"])] = str(tmp_path / "none.jsonl")
    result = runner.invoke(rerank_app, no_file)
    assert result.exit_code == 2 and "none.jsonl does not exist" in result.stderr
    assert "Traceback" not in missing.output + bad_format.output + result.output
    assert not (tmp_path / "m").exists()
