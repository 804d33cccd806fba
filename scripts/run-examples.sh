#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the parity checks of examples/. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest --onnx-parity examples/ "$@"
