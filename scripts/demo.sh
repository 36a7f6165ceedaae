#!/usr/bin/env bash
# The main job on the embedded defaults, offline: set up, ingest the sample
# folder into the collection "demo", and search it. Run it twice: the second
# ingest skips every unchanged file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
QUESTION=${1:-"Where was Super Bowl 50 played?"}
.venv/bin/ragkit ingest evaluation/datasets/sample-docs --collection demo
echo
echo "search: $QUESTION"
.venv/bin/ragkit search "$QUESTION" --collection demo --top-k 3
