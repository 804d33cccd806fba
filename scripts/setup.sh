#!/usr/bin/env bash
# Create .venv (if missing) and install onnxparity with its dev extras, pinned by constraints/ci.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints/ci.txt -e '.[dev]'
