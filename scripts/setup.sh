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
# The HTML report's browser test drives headless Chromium (tests/test_html_browser.py); CI must
# run it, so install Debian's package where it is missing and this user may (root, or sudo
# without a password). Elsewhere the test skips and says why.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
   && ! command -v google-chrome >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "setup: could not install chromium (the browser test will say so)" >&2
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null) || echo "setup: could not install chromium (the browser test will say so)" >&2
  fi
fi
