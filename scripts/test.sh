#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint, type-check and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export RAGAS_DO_NOT_TRACK=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# DeepEval's metrics run in their own environment (.venv-deepeval, see scripts/setup.sh); the main run leaves
# their tests to it instead of skipping them
.venv-deepeval/bin/python -m pytest -q -p no:cacheprovider connectors/deepeval/tests
.venv/bin/python -m pytest --ignore=connectors/deepeval/tests "$@"
