#!/usr/bin/env bash
# A sharded CI run, simulated from one checkout: N shard processes of the parity suite side by
# side (as N CI machines would run them), then the merge job.
#
#   bash scripts/sharded-run.sh N OUT [pytest arguments: paths, -k, --onnx-parity-* ...]
#
# Each shard runs `pytest --onnx-parity --onnx-parity-shard=K/N` and writes OUT/shard-K.json
# (its log: OUT/shard-K.log); the merge job writes OUT/merged.json and OUT/merged.html, then
# gates the merge against $ONNXPARITY_BASELINE when set (else `onnxparity report show`, which
# fails on a failed item). Either refuses a merge that misses a shard's report.
# .github/workflows/example-sharded.yml is the same run on real CI machines.
set -uo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash scripts/sharded-run.sh N OUT [pytest arguments]" >&2
    exit 2
fi
count=$1
out=$2
shift 2
python=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
pids=()
for index in $(seq 1 "$count"); do
    "$python" -m pytest -p no:cacheprovider -q --onnx-parity --onnx-parity-shard="$index/$count" \
        --onnx-parity-report="$out/shard-$index.json" "$@" > "$out/shard-$index.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid"  # a shard with failing items still wrote its report: the gate decides
done
"$python" -m onnxparity.cli report merge "$out"/shard-*.json -o "$out/merged.json" || exit $?
"$python" -m onnxparity.cli report html "$out/merged.json" -o "$out/merged.html" || exit $?
if [ -n "${ONNXPARITY_BASELINE:-}" ]; then
    "$python" -m onnxparity.cli gate "$out/merged.json" --baseline "$ONNXPARITY_BASELINE"
else
    "$python" -m onnxparity.cli report show "$out/merged.json"
fi
