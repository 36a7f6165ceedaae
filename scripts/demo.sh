#!/usr/bin/env bash
# The main job on the embedded defaults, offline: set up, ingest the sample
# folder into the collection "demo", and answer a question with citations
# (the packaged Qwen2.5-Coder-0.5B model on the CPU). Run it twice: the second ingest
# skips every unchanged file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
QUESTION=${1:-"Where was Super Bowl 50 played?"}
.venv/bin/ragkit ingest evaluation/datasets/sample-docs --collection demo
echo
echo "question: $QUESTION"
.venv/bin/ragkit ask "$QUESTION" --collection demo
