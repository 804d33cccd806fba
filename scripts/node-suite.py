"""Run the ONNX backend node tests through onnxparity's prebuilt-file path and classify every
model (tests/node_suite.py says how); print the counts and write the outcomes as JSON.

    .venv/bin/python scripts/node-suite.py [-o outcomes.json] [--workers 2] [--only PREFIX]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import node_suite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-o", "--output", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    names = sorted(n for n in node_suite.cases() if n.startswith(args.only or ""))
    started = time.perf_counter()
    outcomes = node_suite.run_all(names, workers=args.workers, timeout=args.timeout)
    counts = collections.Counter(o for o, _ in outcomes.values())
    kinds = collections.Counter(d.split(":")[0] for o, d in outcomes.values() if o == "failed")
    print(
        f"{len(names)} models in {time.perf_counter() - started:.0f} s: {dict(counts)}; failed: {dict(kinds)}"
    )
    with open(node_suite.EXPECTED, encoding="utf-8") as f:
        print("\n".join(node_suite.report(outcomes, json.load(f))))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(dict(sorted(outcomes.items())), f, indent=1)


if __name__ == "__main__":
    main()
