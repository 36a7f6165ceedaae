#!/usr/bin/env bash
# Create .venv-garak: garak 0.17.1 for the security scan (docs/security.md), in a venv of its own because
# garak pins openai 2.x and transformers 5.19 (ragkit's .venv pins openai 3.3 and transformers 5.23).
#   bash evaluation/security/install_garak.sh              # as garak declares it: with torch and its CUDA
#                                                          # libraries, ~6.5 GB (7 min on a busy 2-core machine)
#   bash evaluation/security/install_garak.sh --no-torch   # without torch, triton, CUDA and accelerate: ~1.3 GB;
#                                                          # enough for garak_scan.py (its generator, probes and
#                                                          # string detectors never import torch); pip check then
#                                                          # reports torch and accelerate missing, as expected
# then: .venv/bin/python evaluation/security/garak_scan.py
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${GARAK_VENV:-.venv-garak}"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS=evaluation/security/garak-constraints.txt
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" pip setuptools
if [ "${1:-}" = "--no-torch" ]; then
    deps="$(mktemp)"
    grep -v -i -E '^(#|garak==|torch==|triton==|nvidia-(cu|nccl|nvjitlink|nvshmem|nvtx)|cuda-|accelerate==)' "$CONSTRAINTS" >"$deps"
    "$VENV/bin/python" -m pip install -q --no-deps -r "$deps"
    "$VENV/bin/python" -m pip install -q --no-deps garak==0.17.1
    rm -f "$deps"
else
    "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" garak==0.17.1
    "$VENV/bin/python" -m pip check
fi
"$VENV/bin/garak" --version
