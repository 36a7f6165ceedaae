"""evaluation/benchmarks/gpu_bench.py runs end to end, tiny, on a machine without a GPU.

The CPU rows are measured, the GPU rows say they were not run, and the
generation part talks real HTTP to the shared FAKE OpenAI-compatible server
(no vLLM here: it needs a GPU). Times are not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ragkit.testing.fake_openai import FakeOpenAIServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "evaluation" / "benchmarks" / "gpu_bench.py"
torch = pytest.importorskip("torch", reason="the embedding part needs torch (ragkit-sentence-transformers)")
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU output; this machine has a GPU")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_the_benchmark_runs_its_cpu_rows_and_says_no_gpu(tmp_path):
    out = tmp_path / "gpu.json"
    with FakeOpenAIServer(model="fake-model") as fake:
        done = run(
            *("--vectors", "3000", "--queries", "20", "--texts", "16", "--cpu-batches", "8"),
            *("--server", fake.v1, "--requests", "4", "--concurrency", "2", "--max-tokens", "8"),
            *("--json", str(out)),
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert len(fake.state.on("/v1/chat/completions")) == 2 * (1 + 4)  # each concurrency: a warm-up, 4 measured
    results = json.loads(out.read_text())
    assert results["gpu"] is False and "no GPU here: the GPU rows are not run" in done.stdout
    cpu = [r for r in results["embedding"] if r["device"] == "cpu"]
    assert cpu and all(r["texts_per_s"] > 0 for r in cpu)
    assert all(r["note"] == "not run: no GPU here" for r in results["embedding"] if r["device"] == "cuda")
    flat, ivf, *gpu = results["faiss"]
    assert flat["recall@10"] == 1.0 and 0 < ivf["recall@10"] <= 1 and ivf["qps"] > 0
    assert [r["index"] for r in gpu] == ["GpuIndexFlatIP", "GpuIndexIVFFlat", "GpuIndexCagra"]
    assert all(r["note"] == "not run: no GPU here" for r in gpu)
    *server, local = results["generation"]
    assert [r["path"] for r in server] == ["server fake-model, 1 at a time", "server fake-model, 2 at a time"]
    assert all(r["tokens_per_s"] > 0 for r in results["generation"]) and local["path"].startswith("CPU SmolLM2")
    assert "| CPU IVF" in done.stdout and "vs CPU SmolLM2" in done.stdout


def test_the_gpu_check_says_there_is_no_gpu_instead_of_passing():
    done = run("--check")
    assert done.returncode == 2 and "no GPU here" in done.stdout
