#!/usr/bin/env bash
# Create .venv-garak: garak 0.17.1 for the security scan (docs/security.md), in a venv of its own
# because garak pins openai 2.x and transformers 5.19 (ragkit pins openai 3.3 and transformers 5.23). It pulls in torch with
# its CUDA libraries: about 6.5 GB on disk and 7 minutes to install on a busy 2-core machine.
#   bash evaluation/security/install_garak.sh            # then: .venv/bin/python evaluation/security/garak_scan.py
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${GARAK_VENV:-.venv-garak}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade -c evaluation/security/garak-constraints.txt pip setuptools
"$VENV/bin/python" -m pip install -q -c evaluation/security/garak-constraints.txt garak==0.17.1
"$VENV/bin/python" -m pip check
"$VENV/bin/garak" --version
