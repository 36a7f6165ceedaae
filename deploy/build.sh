#!/usr/bin/env bash
# Build ragkit's CPU image (deploy/Dockerfile) with podman, on a machine that reaches no container
# registry: the base image is made here from Debian's packages (mmdebstrap) plus this machine's CPython.
#
#   deploy/build.sh                 # base image (once) + localhost/ragkit:cpu
#   IMAGE=localhost/ragkit:dev deploy/build.sh
#   BASE_IMAGE=docker.io/library/python:3.11-slim deploy/build.sh   # where a registry is reachable
#   DOCKERFILE=deploy/Dockerfile.cuda IMAGE=localhost/ragkit:cuda deploy/build.sh
#
# Variables: IMAGE, BASE_IMAGE, DOCKERFILE, REBUILD_BASE=1 (remake the base), PYTHON_PREFIX (the CPython
# copied into the base; default: the one behind .venv), DEBIAN_SOURCES (apt's sources file),
# BASE_ONLY=1 (stop after the base image), BUILD_ARGS (extra `podman build` arguments, e.g. "--build-arg TORCH_INDEX_URL=...").
#
# Nothing about this machine goes into a layer: the CA bundle and a pip configuration written from
# `pip config list` are build secrets, and the local wheel folders and package indexes pip uses
# (find-links, file:// indexes) are mounted read-only for the build only.
set -euo pipefail
cd "$(dirname "$0")/.."

export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/containers.conf}
IMAGE=${IMAGE:-localhost/ragkit:cpu}
BASE_IMAGE=${BASE_IMAGE:-localhost/ragkit-base:bookworm}
DOCKERFILE=${DOCKERFILE:-deploy/Dockerfile}
DEBIAN_SOURCES=${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
HOST_PYTHON=${HOST_PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
PYTHON_PREFIX=${PYTHON_PREFIX:-$("$HOST_PYTHON" -c 'import sys; print(sys.base_prefix)')}
CA_BUNDLE=${CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}

log() { echo "build.sh: $*" >&2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Debian's runtime libraries for CPython's standard library modules (ssl, sqlite3, ctypes, bz2, lzma,
# readline, curses, uuid, expat); no compiler, no Python from Debian (bookworm's is 3.11.2, and the pin
# set needs >= 3.11.5: soupsieve).
BASE_PACKAGES=ca-certificates,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,zlib1g,libreadline8,libncursesw6,libuuid1,libexpat1,libtirpc3

make_base() {
  if [ "${REBUILD_BASE:-0}" != 1 ] && podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE exists (REBUILD_BASE=1 remakes it)"
    return
  fi
  case "$BASE_IMAGE" in
    localhost/*) ;;
    *) log "pulling $BASE_IMAGE"; podman pull "$BASE_IMAGE"; return ;;
  esac
  # CPython 3.11 >= 3.11.5, built on this Debian release (same glibc, OpenSSL 3, libffi 8), copied
  # into /usr/local as in the official python images. Tests, IDLE, tkinter, headers, the static
  # library and site-packages stay out.
  "$PYTHON_PREFIX/bin/python3" -c 'import sys; v = sys.version_info
sys.exit(0 if v[:2] == (3, 11) and v >= (3, 11, 5) else "need CPython 3.11.5+ (cp311 wheels), found %s" % sys.version)'
  [ -f "$DEBIAN_SOURCES" ] || { log "no apt sources file at $DEBIAN_SOURCES (set DEBIAN_SOURCES)"; exit 1; }
  log "making $BASE_IMAGE: Debian bookworm (minbase) + CPython from $PYTHON_PREFIX"
  tar -C "$PYTHON_PREFIX" -cf "$work/python.tar" \
    --exclude='lib/python3.11/site-packages/*' --exclude='__pycache__/*.opt-*.pyc' \
    --exclude=lib/python3.11/test --exclude=lib/python3.11/idlelib --exclude=lib/python3.11/tkinter \
    --exclude=lib/python3.11/turtledemo --exclude=lib/python3.11/lib2to3/tests \
    --exclude='lib/python3.11/*/tests' --exclude='lib/python3.11/config-3.11-*/*.a' \
    --exclude='lib/python3.11/lib-dynload/_test*' --exclude='lib/python3.11/lib-dynload/_tkinter*' \
    --exclude='lib/python3.11/lib-dynload/xxlimited*' --exclude='lib/python3.11/lib-dynload/_xxtestfuzz*' \
    bin/python3.11 bin/python3 bin/python lib/libpython3.11.so.1.0 lib/libpython3.11.so lib/libpython3.so \
    lib/python3.11
  mmdebstrap --variant=minbase --mode=root --quiet \
    --include="$BASE_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="tar -C \"\$1/usr/local\" -xf '$work/python.tar'" \
    --customize-hook='chroot "$1" ldconfig' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$work/base.tar" "$DEBIAN_SOURCES"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$work/base.tar" "$BASE_IMAGE" >/dev/null
  podman run --rm --network=none "$BASE_IMAGE" python3 -c 'import ssl, sqlite3, ctypes, bz2, lzma, uuid, venv, sys; print("base python", sys.version.split()[0])'
}

# pip's configuration on this machine (indexes, find-links), as a file handed in as a secret, and the
# local folders it names, mounted read-only for the build.
pip_setup() {
  local conf=$work/pip.conf
  echo "[global]" >"$conf"
  mounts=()
  "$HOST_PYTHON" -m pip config list 2>/dev/null | while IFS= read -r line; do
    key=${line%%=*}; value=${line#*=}; value=${value#\'}; value=${value%\'}
    case "$key" in
      global.cert | global.constraint | :env:.*) ;;  # the CA comes as its own secret; the image has its pins
      global.* | install.*) echo "${key#*.} = $value" >>"$conf" ;;
    esac
  done
  # every local folder the configuration or the environment points at
  local paths
  paths=$( { grep -E '^(find-links|index-url|extra-index-url) = ' "$conf" | cut -d= -f2-; echo "${PIP_FIND_LINKS:-}"; } |
    tr ' ' '\n' | sed -e 's#^file://##' | grep '^/' | sort -u || true)
  for p in $paths; do
    [ -d "$p" ] || continue
    case "$p" in */simple) p=${p%/simple} ;; esac
    mounts+=(-v "$p:$p:ro")
  done
  if [ -n "${PIP_FIND_LINKS:-}" ] && ! grep -q '^find-links' "$conf"; then
    echo "find-links = $PIP_FIND_LINKS" >>"$conf"
  fi
}

make_base
[ "${BASE_ONLY:-0}" = 1 ] && exit 0
mounts=()
pip_setup
secrets=(--secret "id=pipconf,src=$work/pip.conf")
[ -f "$CA_BUNDLE" ] && secrets+=(--secret "id=cacert,src=$CA_BUNDLE")
log "building $IMAGE from $DOCKERFILE (base $BASE_IMAGE)"
old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
start=$(date +%s)
# --format docker: OCI images have no HEALTHCHECK
# shellcheck disable=SC2086  # BUILD_ARGS is split on purpose
podman build --pull=never --layers --format docker -f "$DOCKERFILE" -t "$IMAGE" \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" "${secrets[@]}" "${mounts[@]}" ${BUILD_ARGS:-} .
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $(($(date +%s) - start)) s: $((size / 1000000)) MB"
# the image this build replaced, if nothing else uses it (the builder stage's layers stay as the cache;
# `podman image prune` drops them)
new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then podman rmi "$old_id" >/dev/null 2>&1 || true; fi
