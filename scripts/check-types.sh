#!/usr/bin/env bash
# Set up (scripts/setup.sh) and type-check the package with mypy in strict mode (pyproject.toml's
# [tool.mypy]): what users' type checkers see is the package's real types.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/mypy "$@"
