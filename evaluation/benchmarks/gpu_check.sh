#!/usr/bin/env bash
# Checks ragkit's GPU paths on a machine with an NVIDIA GPU, then records the GPU benchmark.
# Run from the repository root with the project's venv (CUDA torch and the `gpu` extra installed):
#   pip install -e ".[gpu]" && pip uninstall -y faiss-cpu \
#     && pip install --force-reinstall --no-deps faiss-gpu-cu12==1.14.1.post1
#   evaluation/benchmarks/gpu_check.sh [--server http://localhost:8000/v1]
# Exit status: 0 all passed; non-zero at the first failing step (2: no GPU visible).
# Takes about 5 minutes on one H100 (most of it the 1M-vector CPU baseline of the benchmark).
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT=${OUT:-/tmp/ragkit-gpu-check}
mkdir -p "$OUT"

echo "== the GPU and what faiss and torch see"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c 'import faiss, torch; print("faiss", faiss.__version__, "GPUs:", faiss.get_num_gpus(), "CAGRA:", hasattr(faiss, "GpuIndexCagra")); print("torch", torch.__version__, "CUDA:", torch.cuda.is_available())'

echo "== ragkit's GPU paths, asserted (FAISS store on the GPU, CUDA fp16 embedding with the memory-sized batch)"
"$PY" evaluation/benchmarks/gpu_bench.py --check

echo "== the tests that run only where there is a GPU (they skip elsewhere)"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_faiss_gpu.py connectors/sentence_transformers/tests/test_gpu_batch.py \
  "connectors/sentence_transformers/tests/test_sentence_transformers_embedder.py::test_cuda_fp16_matches_cpu_fp32"

echo "== the benchmark (ratios against the CPU path); results in $OUT/gpu_bench.json"
"$PY" evaluation/benchmarks/gpu_bench.py --json "$OUT/gpu_bench.json" "$@" | tee "$OUT/gpu_bench.md"
