"""The persistent cache's effect on a second CI run: `pytest --onnx-parity examples/` with every
variant, run in fresh processes against one temporary cache folder — the first exports and
stores, the second reuses everything, the third after a line of one model's forward changed
(examples/test_mlp.py's, in a copy of examples/), the fourth with another seed (every
search runs again, on stored exports and variant builds), the fifth the same with yet another
seed on a copy of the cache without its variant builds (what the build cache saves) — each run's
wall time (process start-up included), its work (the wall time minus a collect-only run's) and
what its report says of each export. The passing examples only (not the failing-on-purpose
files).

    .venv/bin/python benchmarks/cache.py

Prints a Markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: every search runs again (another seed), on exports and variant builds from the cache
SEARCH_AGAIN = "another seed (--onnx-parity-seed=1)"
NO_BUILDS = "yet another seed, variant builds removed from the cache"
VARIANTS = "ort-cpu,ort-cpu-noopt,onnx-reference,ort-gpu,int8-dynamic,int8-static,fp16"


def run(
    project: str, cache: str, report: str, extra: tuple[str, ...] = ()
) -> tuple[float, collections.Counter]:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--onnx-parity",
            "examples/",
            "--ignore-glob=examples/test_failures*",
            "--ignore=examples/test_forensics_lines.py",  # the passing examples only
            f"--onnx-parity-variants={VARIANTS}",
            f"--onnx-parity-cache={cache}",
            f"--onnx-parity-report={report}",
            *extra,
        ],
        cwd=project,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    exports = collections.Counter()
    if "--collect-only" in extra:
        return wall, exports
    seen = set()
    for item in json.load(open(report))["items"]:
        model = item.get("model") or {}
        if item["kind"] == "parity" and (item["test"], item.get("opset")) not in seen:
            seen.add((item["test"], item.get("opset")))
            exports[(model.get("cache") or "?").split(":")[0]] += 1
    return wall, exports


def main() -> None:
    scratch = tempfile.mkdtemp(prefix="onnxparity-cache-bench-")
    try:
        project = os.path.join(scratch, "project")
        shutil.copytree(os.path.join(ROOT, "examples"), os.path.join(project, "examples"))
        shutil.copy(os.path.join(ROOT, "pyproject.toml"), project)
        cache = os.path.join(scratch, "cache")
        rows = []
        for name in ("first run", "second run", "after a change to test_mlp.py", SEARCH_AGAIN, NO_BUILDS):
            if name.startswith("after"):
                # a changed line of forward (a comment changes no compiled code: nothing runs again)
                path = os.path.join(project, "examples", "test_mlp.py")
                with open(path) as f:
                    text = f.read()
                with open(path, "w") as f:
                    f.write(text.replace("dim=-1)", "dim=-1) * 1.0", 1))
            extra = {SEARCH_AGAIN: ("--onnx-parity-seed=1",), NO_BUILDS: ("--onnx-parity-seed=2",)}.get(
                name, ()
            )
            if name == NO_BUILDS:
                shutil.copytree(cache, cache + "-exports-only", ignore=shutil.ignore_patterns("variants"))
                cache += "-exports-only"
            wall, exports = run(project, cache, os.path.join(scratch, "r.json"), extra)
            rows.append((name, wall, exports))
        # a run's work: its wall time minus a collect-only run's (start-up, imports, collection)
        collection, _ = run(project, cache, os.path.join(scratch, "c.json"), ("--collect-only",))
        print(f"collect-only run: {collection:.1f} s")
        print()
        print("| run | wall (s) | vs first | work (s) | work vs first | exports stored | reused | not cached |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        first = rows[0][1]
        for name, wall, exports in rows:
            work = wall - collection
            print(
                f"| {name} | {wall:.1f} | {first / wall:.2f}x | {work:.1f} | {(first - collection) / work:.2f}x | "
                f"{exports['stored in the persistent cache']} | {exports['reused from the persistent cache']} | "
                f"{exports['not cached']} |"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
