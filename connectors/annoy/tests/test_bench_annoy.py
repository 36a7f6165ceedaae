"""A tiny run of benchmarks/bench_annoy.py: every step runs, the table has its ratios, a rerun resumes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_annoy.py"


def test_bench_annoy_runs_tiny_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_annoy", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = ["--n", "1500", "--queries", "20", "--flat-queries", "5", "--n-trees", "2"]
    args += ["--search-k=-1,3000", "--ef-search", "16", "--work", str(tmp_path)]
    assert bench.main(args) == 0
    table = capsys.readouterr().out
    assert "| faiss hnsw M 32, efSearch=16 |" in table
    assert "| annoy 2 trees, search_k=20 |" in table and "| annoy 2 trees, search_k=3000 |" in table
    results = json.loads((tmp_path / "annoy-1500-clustered.json").read_text())
    exhaustive = results["annoy-2"]["search_k=3000"]["recall@10"]
    assert exhaustive == 1.0  # 3000 nodes cover a 2-tree forest over 1,500 vectors: Annoy sees them all
    assert 0 <= results["annoy-2"]["search_k=20"]["recall@10"] <= exhaustive
    stamp = results["faiss-hnsw"]["load_average"]
    assert bench.main(args) == 0  # resumes: nothing left to run, the saved steps are kept
    assert json.loads((tmp_path / "annoy-1500-clustered.json").read_text())["faiss-hnsw"]["load_average"] == stamp
