"""How often failure forensics names the node a bug was planted in (issue 27): every case of
tests/forensics_corpus.py (planted export bugs in torch dynamo and TorchScript exports, Keras
and scikit-learn) checked as a prebuilt file against its model in one ParitySession, and per
case: the verdict (every planted edit must fail the check), the node named, its span, the
module/layer/step, whether the planted node was named ("named", "in span": in a span of at
most 10 nodes, "module": the planted node's module named) or an innocent one ("innocent"),
and the "first divergence:" line users read. Then per-framework counts.

    .venv/bin/python benchmarks/forensics_corpus.py [--framework torch-dynamo ...] [--case NAME ...]

Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.simplefilter("ignore")

from forensics_corpus import FRAMEWORKS, Outcome, cases, run  # noqa: E402
from onnxparity.config import ParityConfig  # noqa: E402
from onnxparity.runner import ParitySession  # noqa: E402

GOOD = ("named", "in span", "module")


def cell(text: object, width: int | None = None) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", action="append", choices=FRAMEWORKS)
    parser.add_argument("--case", action="append", help="run only these cases (by name)")
    parser.add_argument("--verbose", action="store_true", help="print each failing check's message")
    options = parser.parse_args()
    selected = [
        c for c in cases(tuple(options.framework or FRAMEWORKS)) if not options.case or c.name in options.case
    ]
    started = time.perf_counter()
    outcomes: list[Outcome | tuple] = []
    with tempfile.TemporaryDirectory() as folder:
        config = ParityConfig(reproducer_dir=os.path.join(folder, "reproducers"))
        with ParitySession(config) as session:
            for case in selected:
                try:
                    outcome = run(case, session, os.path.join(folder, "exports"))
                except Exception as exc:  # a case that cannot run is reported, not fatal
                    traceback.print_exc()
                    outcomes.append((case, f"error: {type(exc).__name__}: {exc}"))
                    continue
                outcomes.append(outcome)
                if options.verbose:
                    print(f"== {case.name}\n{outcome.message}\n", file=sys.stderr)
                print(
                    f"{case.name}: {outcome.status}, {outcome.verdict} ({outcome.seconds:.1f} s)",
                    file=sys.stderr,
                )
    total = time.perf_counter() - started

    print(
        "| case | framework | status | named node | span | module/source | planted | localized | first divergence |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for outcome in outcomes:
        if isinstance(outcome, tuple):
            case, error = outcome
            print(f"| {case.name} | {case.framework} | {cell(error, 120)} | | | | | | |")
            continue
        found = outcome.divergence
        print(
            "| "
            + " | ".join(
                cell(v)
                for v in (
                    outcome.case.name,
                    outcome.case.framework,
                    outcome.status,
                    found.node if found else "—",
                    len(found.nodes) if found else "—",
                    (found.source or "—") if found else "—",
                    ", ".join(sorted(outcome.planted)),
                    outcome.verdict,
                )
            )
            + f" | {cell(outcome.line, 160)} |"
        )
    print()
    print(
        "| framework | named | in span | module | localized (named, span or module) / total | innocent | wide span | none | not failed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for framework in FRAMEWORKS:
        mine = [o for o in outcomes if not isinstance(o, tuple) and o.case.framework == framework]
        errors = [o for o in outcomes if isinstance(o, tuple) and o[0].framework == framework]
        if not mine and not errors:
            continue
        count = {v: sum(o.verdict == v for o in mine) for v in (*GOOD, "innocent", "wide span", "none")}
        good = sum(count[v] for v in GOOD)
        not_failed = sum(o.status != "failed" for o in mine) + len(errors)
        print(
            f"| {framework} | {count['named']} | {count['in span']} | {count['module']} | "
            f"{good} / {len(mine) + len(errors)} | {count['innocent']} | {count['wide span']} | "
            f"{count['none']} | {not_failed} |"
        )
    print(f"\n{len(outcomes)} cases in {total:.0f} s")


if __name__ == "__main__":
    main()
