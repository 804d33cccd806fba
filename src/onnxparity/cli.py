"""``onnxparity``: the command line over reports — show, diff, merge, and the release gate.

    onnxparity report show R.json
    onnxparity report diff A.json B.json
    onnxparity report merge A.json B.json ... -o ALL.json
    onnxparity gate R.json --baseline B.json [--max-error-growth X] [--max-latency-regression F]

Exit status: 0 fine; 1 the gate found a regression (or ``report show`` of a report with
failures, or of an interrupted run); 2 bad usage, or a report that is unreadable, malformed
(the message names the file and the field) or — for ``gate``, on either side — from an
interrupted run, or an output path that cannot be written. ``gate`` prints the Markdown summary
on stdout, ready for ``$GITHUB_STEP_SUMMARY``. Shares every rule with the pytest plugin
(:mod:`onnxparity.report`). Imports no framework and no ONNX Runtime.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import argparse_type, setting
from .report import document, gate, render
from .report.run import write_problem


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onnxparity", description="Reports of pytest --onnx-parity runs: show, diff, merge, gate."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="show, diff or merge reports")
    actions = report.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="the terminal table of a report")
    show.add_argument("report")
    diff = actions.add_parser("diff", help="what changed from report A to report B")
    diff.add_argument("a")
    diff.add_argument("b")
    merge = actions.add_parser("merge", help="one report from several (sharded CI jobs)")
    merge.add_argument("reports", nargs="+")
    merge.add_argument("-o", "--output", required=True, help="where to write the merged report")
    check = commands.add_parser("gate", help="exit 1 when the report regresses from the baseline")
    check.add_argument("report")
    check.add_argument("--baseline", required=True)
    for name in ("max_error_growth", "max_latency_regression"):  # as the plugin's gate flags
        known = setting(name)
        option = "--" + name.replace("_", "-")
        check.add_argument(
            option,
            type=argparse_type(known.parse, option),
            default=known.default,
            metavar=known.metavar,
            help=known.description,
        )
    check.add_argument("--error-floor", type=float, default=gate.DEFAULT_ERROR_FLOOR, metavar="E")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "gate":
            current, baseline = document.load(args.report), document.load(args.baseline)
            document.check_complete(current, args.report)
            document.check_complete(baseline, args.baseline)
            verdict = gate.gate(
                current,
                baseline,
                max_error_growth=args.max_error_growth,
                max_latency_regression=args.max_latency_regression,
                error_floor=args.error_floor,
            )
            sys.stdout.write(render.markdown(current, verdict, title="ONNX parity release gate"))
            for line in verdict.reasons:
                sys.stderr.write(f"onnxparity gate: {line}\n")
            return 0 if verdict.passed else 1
        if args.action == "show":
            current = document.load(args.report)
            sys.stdout.write(render.show(render.terminal(current)))
            bad = current["summary"].get("failed") or current["summary"].get("error")
            return 1 if bad or current.get("interrupted") else 0
        if args.action == "diff":
            before, after = document.load(args.a), document.load(args.b)
            lines = gate.diff(before, after) or ["no differences"]
            for path, report in ((args.a, before), (args.b, after)):
                if report.get("interrupted"):
                    lines.append(f"note: {path}: {document.completeness(report)}")
            sys.stdout.write(render.show(lines))
            return 0
        merged = document.merge(document.load(path) for path in args.reports)
        try:
            document.save(merged, args.output)
        except OSError as exc:
            sys.stderr.write(
                f"onnxparity: cannot write the merged report to {args.output}: {write_problem(args.output, exc)}\n"
            )
            return 2
        sys.stdout.write(
            f"merged {len(args.reports)} reports, {len(merged['items'])} items -> {args.output}\n"
        )
        return 0
    except document.ReportError as exc:
        sys.stderr.write(f"onnxparity: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
