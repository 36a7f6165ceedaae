#!/usr/bin/env bash
# End-to-end check of ragkit's CPU image with podman: build it (or reuse it), then with --network=none
# ingest a few squad-dev documents, ask a question and get a cited answer, check /healthz and /readyz
# over HTTP and time the cold start to ready; then bring up compose's ragkit-only profile with
# podman-compose and check /readyz through the published port. Prints one line per measurement and
# ends with "image check: N passed, 0 failed".
#
#   deploy/check-image.sh              # reuses localhost/ragkit:cpu when it exists
#   REBUILD=1 deploy/check-image.sh    # builds it first (deploy/build.sh)
#   SKIP_COMPOSE=1 deploy/check-image.sh
#
# Variables: IMAGE, REBUILD, DOCS (a folder of documents; default: squad-dev beside the repository),
# SKIP_COMPOSE, READY_TIMEOUT (seconds; default 120), COMPOSE (podman-compose; default: PATH, then .venv),
# CHECK_MODEL (answer with this packaged model instead of the recipes' one, e.g. SmolLM2-135M-Instruct).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/containers.conf}
IMAGE=${IMAGE:-localhost/ragkit:cpu}
DOCS=${DOCS:-$PWD/../shared/datasets/squad-dev/documents}
READY_TIMEOUT=${READY_TIMEOUT:-120}
COMPOSE=${COMPOSE:-$(command -v podman-compose || echo "$PWD/.venv/bin/podman-compose")}
KEY=check-$RANDOM$RANDOM
run_id=ragkit-check-$$
passed=0
check_start=$(date +%s.%N)

say() { echo "check-image: $*" >&2; }
ok() { passed=$((passed + 1)); say "ok - $*"; }
fail() {
  say "FAILED - $*"
  echo "image check: $passed passed, 1 failed"
  exit 1
}
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }

data_dir=$(mktemp -d)
docs_dir=$(mktemp -d)
cleanup() {
  local name
  for name in "$run_id-ingest" "$run_id-serve"; do # one at a time: podman stops at a missing one
    podman rm -f -v --ignore "$name" >/dev/null 2>&1 || true
  done
  if [ -n "${compose_up:-}" ]; then
    "$COMPOSE" -f deploy/compose.yaml -p "$run_id" down -v -t 5 >/dev/null 2>&1 || true
  fi
  rm -rf "$data_dir" "$docs_dir"
}
trap cleanup EXIT

# ---- build or reuse ------------------------------------------------------------------------------
if [ "${REBUILD:-0}" = 1 ] || ! podman image exists "$IMAGE"; then
  build_start=$(date +%s.%N)
  IMAGE=$IMAGE deploy/build.sh
  say "build seconds: $(elapsed "$build_start")"
else
  say "reusing $IMAGE (REBUILD=1 rebuilds it)"
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "image size: $((size / 1000000)) MB ($(python3 -c "print(f'{$size / 1e9:.2f}')") GB)"
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || fail "the image runs as root (User '$user')"
ok "runs as user $user"
podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q healthz ||
  fail "no HEALTHCHECK on /healthz in $IMAGE"
ok "HEALTHCHECK on /healthz"

# ---- ingest and ask with --network=none -------------------------------------------------------------
[ -d "$DOCS" ] || fail "no documents at $DOCS (set DOCS)"
# a sample of three of the shortest documents; the question is about the Amazon (0016-amazon-rainforest.md)
for f in 0008-sky-united-kingdom.md 0016-amazon-rainforest.md 0029-construction.md; do
  [ -f "$DOCS/$f" ] && cp "$DOCS/$f" "$docs_dir/"
done
[ "$(ls "$docs_dir" | wc -l)" -ge 1 ] || cp "$(ls "$DOCS"/* | head -3)" "$docs_dir/"
chmod -R a+rX "$docs_dir"
chmod 777 "$data_dir" # the image's user (uid 1000) writes there
ingest_start=$(date +%s.%N)
podman run --rm --name "$run_id-ingest" --network=none -v "$data_dir:/data" -v "$docs_dir:/docs:ro" \
  "$IMAGE" ingest /docs -c squad >&2 || fail "ragkit ingest in the container"
ok "ingested $(ls "$docs_dir" | wc -l) documents with --network=none in $(elapsed "$ingest_start") s"

# the service, bound to 0.0.0.0 inside the container's own (loopback-only) network namespace
start=$(date +%s.%N)
# the image's own recipes (basic.yaml: the packaged Qwen2.5-Coder-0.5B); an image built without that extra
# answers with SmolLM2 instead (CHECK_MODEL=SmolLM2-135M-Instruct)
pipeline_args=()
if [ -n "${CHECK_MODEL:-}" ]; then
  pipeline_args=(-e "RAGKIT_SERVICE_PIPELINES={\"basic\": {\"generator\": {\"type\": \"transformers\", \"model\": \"$CHECK_MODEL\"}}}")
fi
podman run -d --name "$run_id-serve" --network=none -v "$data_dir:/data" \
  -e RAGKIT_API_KEYS="$KEY:admin" "${pipeline_args[@]}" "$IMAGE" >/dev/null ||
  fail "podman run $IMAGE"
# poll /readyz from inside the container (no network to publish ports on)
podman exec "$run_id-serve" python -c "
import sys, time, urllib.request
deadline = time.monotonic() + $READY_TIMEOUT
while True:
    try:
        with urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=5) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit('not ready after $READY_TIMEOUT s')
    time.sleep(0.1)
" || {
  podman logs "$run_id-serve" >&2 || true
  fail "/readyz"
}
cold=$(elapsed "$start")
say "cold start to ready: $cold s"
ok "/readyz 200 after $cold s"

# HTTP requests from inside the container: /healthz, then a question with the API key
podman exec -e KEY="$KEY" "$run_id-serve" python -c "
import json, os, sys, time, urllib.error, urllib.request
base = 'http://127.0.0.1:8000'
with urllib.request.urlopen(base + '/healthz', timeout=10) as r:
    assert r.status == 200, r.status
    print('healthz', json.load(r), file=sys.stderr)
question = 'How many square kilometers of rainforest are covered in the Amazon basin?'
body = json.dumps({'question': question, 'max_tokens': 48}).encode()
request = urllib.request.Request(base + '/v1/collections/squad/ask', data=body, method='POST',
    headers={'Authorization': 'Bearer ' + os.environ['KEY'], 'Content-Type': 'application/json'})
start = time.monotonic()
try:
    # the first answer on a fresh volume also joins the model's parts and converts its weights once
    with urllib.request.urlopen(request, timeout=1200) as r:
        answer = json.load(r)
except urllib.error.HTTPError as error:
    sys.exit(f'POST /v1/collections/squad/ask: {error.code} {error.read()[:2000]!r}')
print(f'first answer seconds (models load on first use): {time.monotonic() - start:.1f}', file=sys.stderr)
print(json.dumps(answer)[:600], file=sys.stderr)
cited = answer.get('citations') or answer.get('sources') or []
text = json.dumps(cited)
if not cited or 'amazon-rainforest' not in text:
    sys.exit('the answer cites no source from 0016-amazon-rainforest.md')
" || {
  podman logs --tail 40 "$run_id-serve" >&2 || say "(no logs from $run_id-serve)"
  fail "/healthz or the cited answer"
}
ok "/healthz 200 and a cited answer from 0016-amazon-rainforest.md over HTTP"
podman rm -f -v "$run_id-serve" >/dev/null

# ---- compose: the ragkit-only profile -----------------------------------------------------------------
if [ "${SKIP_COMPOSE:-0}" = 1 ]; then
  say "compose skipped (SKIP_COMPOSE=1)"
elif [ ! -f deploy/compose.yaml ]; then
  fail "deploy/compose.yaml is missing (SKIP_COMPOSE=1 skips this part)"
else
  compose_up=1
  # the ragkit-only profile is compose's default (the other services join by profile)
  port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  compose_start=$(date +%s.%N)
  RAGKIT_IMAGE=$IMAGE RAGKIT_API_KEYS="$KEY:admin" RAGKIT_PORT=$port \
    "$COMPOSE" -f deploy/compose.yaml -p "$run_id" up -d >&2 || fail "podman-compose up (ragkit only)"
  python3 - "$port" "$READY_TIMEOUT" <<'EOF' || fail "/readyz through compose"
import sys, time, urllib.request
port, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"not ready after {timeout} s")
    time.sleep(0.2)
EOF
  ok "compose, ragkit only: /readyz 200 on 127.0.0.1:$port after $(elapsed "$compose_start") s"
fi

say "check seconds: $(elapsed "$check_start")"
echo "image check: $passed passed, 0 failed"
