#!/usr/bin/env bash
# Set up (scripts/setup.sh), add the benchmark-only extra (Polygraphy), and run benchmarks/run.py.
# Extra arguments go to it (--quick, --only overhead drawing ...). Results: benchmarks/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install -q -c constraints/ci.txt -e '.[dev,bench]'
.venv/bin/python benchmarks/run.py "$@"
