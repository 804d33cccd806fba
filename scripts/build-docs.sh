#!/usr/bin/env bash
# Set up (scripts/setup.sh) and build the documentation site into .onnxparity/site with
# `mkdocs build --strict` (a broken link, a missing page or reference fails it). The pages'
# failure outputs are written by the build from a fresh run of the examples that fail on purpose
# (about a minute), or from ONNXPARITY_EXAMPLES_REPORT, an examples run's JSON report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict "$@"
echo "site: $PWD/.onnxparity/site/index.html"
