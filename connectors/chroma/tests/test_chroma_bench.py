"""Smoke test of the benchmark script: a tiny run, embedded Chroma and FAISS only."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("chromadb") is None or importlib.util.find_spec("ragkit_chroma") is None:
    pytest.skip(
        "ragkit-chroma or chromadb is not installed: pip install -c constraints.txt -e connectors/chroma",
        allow_module_level=True,
    )

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_store.py"


def test_benchmark_runs_tiny_and_reports_ratios(capsys):
    spec = importlib.util.spec_from_file_location("chroma_bench_store", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["40", "8", "--no-server"])
    assert [r["store"] for r in results] == ["faiss", "chroma-embedded"]
    assert all(r["recall_at_10"] == 1.0 and r["ingest_s"] > 0 for r in results)
    assert '"ratio_to_faiss": "chroma-embedded"' in capsys.readouterr().out
