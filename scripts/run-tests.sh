#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint, and run the self-test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests examples benchmarks
.venv/bin/python -m pytest "$@"
