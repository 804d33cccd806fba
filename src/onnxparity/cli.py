"""``onnxparity``: the command line — a check of an ONNX file, and reports: show, diff, merge,
and the release gate.

    onnxparity check MODEL.onnx [--variants ort-cpu,...] [--examples N] [--inputs F.json | --data DIR]
                                [--report R.json] [--html R.html]
    onnxparity report show R.json
    onnxparity report diff A.json B.json
    onnxparity report merge A.json B.json ... -o ALL.json
    onnxparity report html R.json [--baseline B.json] [--history R1.json ...] -o R.html
    onnxparity report history R1.json R2.json ... [-o HISTORY.html]
    onnxparity advise R.json [--margin M]
    onnxparity gate R.json --baseline B.json [--max-error-growth X] [--max-latency-regression F]

Exit status: 0 fine; 1 the gate found a regression (or ``check``: a variant differs from the
reference; ``report show`` of a report with failures, or of an interrupted run); 2 bad usage
(``check``: a file that is not a readable ONNX model, an unknown variant, a check that could
not run), or a report that is unreadable, malformed
(the message names the file and the field) or — for ``gate``, on either side — from an
interrupted run, or an output path that cannot be written. ``gate`` prints the Markdown summary
on stdout, ready for ``$GITHUB_STEP_SUMMARY``. Shares every rule with the pytest plugin
(:mod:`onnxparity.report`). Imports no framework and no ONNX Runtime, but ``check`` runs
ONNX Runtime and the ONNX reference evaluator.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from onnxparity.config import setting
from onnxparity.parsers import argparse_type
from onnxparity.report import document, gate, history, render
from onnxparity.report.run import write_problem
from onnxparity.variants import ALL_VARIANTS

if TYPE_CHECKING:
    from onnxparity.graph.datasets import Pair
    from onnxparity.spec import Input


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onnxparity",
        description="Check an ONNX file; show, diff, merge and gate reports of pytest --onnx-parity runs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "check",
        help="check an ONNX file's variants against the ONNX reference evaluator on drawn inputs",
        description="Inputs are read from the graph (its symbolic dims 1 to 16, or 16 values from the "
        "least size its convolution and pooling windows take where that is more); the ONNX "
        "reference evaluator (the spec's semantics) computes the expected outputs; each variant "
        "runs on the same drawn inputs and is compared at the default tolerance. Exit 0: every "
        "variant agrees; 1: one differs (the diagnosis, shrunk input and reproducer are printed); "
        "2: the file or an option is unusable, or a check could not run.",
    )
    run.add_argument("model", help="the .onnx file (its external data beside it)")
    run.add_argument(
        "--variants",
        default="ort-cpu",
        help="comma-separated variants to check (default ort-cpu), e.g. ort-cpu,ort-cpu-noopt,fp16",
    )
    run.add_argument(
        "--examples", type=_number("--examples", 1, "inputs drawn per variant"), default=None, metavar="N",
        help="inputs drawn per variant (default 25)",
    )
    run.add_argument(
        "--inputs",
        metavar="FILE",
        help='a JSON file declaring inputs and dims instead of reading them from the graph: {"inputs": '
        '[{"name": "x", "shape": ["batch", 4], "dtype": "float32", "low": -1, "high": 1}], "dims": '
        '{"batch": [1, 8]}} (an input takes op.Input\'s arguments; a dim [min, max] or [min, max, multiple_of])',
    )
    run.add_argument(
        "--data",
        metavar="DIR",
        help="stored input/output pairs as the reference instead of the evaluator: test_data_set_N/ folders "
        "of input_K.pb and output_K.pb (the ONNX backend tests' layout), those files in DIR, or .npz files "
        "of arrays named after the graph's inputs and outputs; each pair is checked on its stored inputs",
    )
    for bound, default in (("atol", "1e-5"), ("rtol", "1e-4")):
        run.add_argument(
            f"--{bound}",
            type=_number(f"--{bound}", 0, "of |actual - expected| <= atol + rtol * |expected|"),
            metavar="X",
            help=f"the tolerance's {bound} for every variant and output (default: each output type's precision, "
            f"{default} for float32; given alone, the other keeps its float32 default for every output)",
        )
    run.add_argument("--seed", type=int, default=0, help="mixed into the search's seed (default 0)")
    run.add_argument("--report", type=_output, help="write the JSON report here")
    run.add_argument("--html", type=_output, help="write the HTML report here")
    report = commands.add_parser("report", help="show, diff or merge reports")
    actions = report.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="the terminal table of a report")
    show.add_argument("report")
    diff = actions.add_parser("diff", help="what changed from report A to report B")
    diff.add_argument("a")
    diff.add_argument("b")
    merge = actions.add_parser("merge", help="one report from several (sharded CI jobs)")
    merge.add_argument("reports", nargs="+")
    merge.add_argument("-o", "--output", type=_output, required=True, help="where to write the merged report")
    page = actions.add_parser("html", help="the self-contained HTML page of a report")
    page.add_argument("report")
    page.add_argument("--baseline", help="a report to compare with: what got worse, better, new, gone")
    page.add_argument("--history", nargs="+", default=[], help="earlier reports, oldest first (trends)")
    page.add_argument("-o", "--output", type=_output, required=True, help="where to write the page")
    trend = actions.add_parser("history", help="per item, the worst error and latency across reports")
    trend.add_argument("reports", nargs="+", help="reports of successive releases, oldest first")
    trend.add_argument(
        "-o", "--output", type=_output, help="also write the HTML page of the newest, with these trends"
    )
    advice = commands.add_parser("advise", help="the tightest tolerance per item, as marker arguments")
    advice.add_argument("report")
    advice.add_argument(
        "--margin",
        type=_number("--margin", 1, "1: exactly the worst example observed"),
        default=2.0,
        help="over the worst example observed (default 2)",
    )
    check = commands.add_parser("gate", help="exit 1 when the report regresses from the baseline")
    check.add_argument("report")
    check.add_argument("--baseline", required=True)
    for name in ("max_error_growth", "max_latency_regression"):  # as the plugin's gate flags
        known = setting(name)
        option = "--" + name.replace("_", "-")
        check.add_argument(
            option,
            type=argparse_type(cast("Callable[[Any, str], Any]", known.parse), option),  # (these settings parse)
            default=known.default,
            metavar=known.metavar,
            help=known.describe(ALL_VARIANTS),
        )
    check.add_argument(
        "--error-floor",
        type=_number("--error-floor", 0, "errors below it never fail the gate"),
        default=gate.DEFAULT_ERROR_FLOOR,
        metavar="E",
    )
    return parser


def _number(option: str, least: float, meaning: str) -> Callable[[str], float]:
    """An argparse ``type=``: a finite number of ``least`` or more, else a usage error naming
    ``option``, the value and the range (inf and nan parse as floats, and would pass silently)."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= least):
            raise argparse.ArgumentTypeError(
                f"{option} must be a finite number >= {least:g} ({meaning}), got {text!r}"
            )
        return value

    return convert


def _output(text: str) -> str:
    """An argparse ``type=`` for ``-o``: a path to write, not an empty one."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"-o must name the file to write, got {text!r}")
    return text


def _write(stream: TextIO, text: str) -> None:
    """``text`` on ``stream``, any character it cannot encode (a lone surrogate in a report's
    name, a file name that is not UTF-8) escaped as ``\\udcff`` instead of a traceback."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    stream.write(text.encode(encoding, "backslashreplace").decode(encoding))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "advise":
            from onnxparity.report.advise import advise, marker_lines

            try:
                found = advise(document.load(args.report), args.margin)
            except ValueError as exc:
                if isinstance(exc, document.ReportError):
                    raise
                _write(sys.stderr, f"onnxparity advise: {exc}\n")
                return 2
            _write(sys.stdout, render.show(marker_lines(found) or ["no parity item ran: nothing to advise"]))
            return 0
        if args.command == "report" and args.action in ("html", "history"):
            return _pages(args)
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
            _write(sys.stdout, render.markdown(current, verdict, title="ONNX parity release gate"))
            for line in verdict.reasons:
                _write(sys.stderr, f"onnxparity gate: {line}\n")
            return 0 if verdict.passed else 1
        if args.action == "show":
            current = document.load(args.report)
            _write(sys.stdout, render.show(render.terminal(current)))
            bad = current["summary"].get("failed") or current["summary"].get("error")
            return 1 if bad or current.get("interrupted") else 0
        if args.action == "diff":
            before, after = document.load(args.a), document.load(args.b)
            lines = gate.diff(before, after) or ["no differences"]
            for path, report in ((args.a, before), (args.b, after)):
                if report.get("interrupted"):
                    lines.append(f"note: {path}: {document.completeness(report)}")
            _write(sys.stdout, render.show(lines))
            return 0
        merged = document.merge(document.load(path) for path in args.reports)
        try:
            document.save(merged, args.output)
        except OSError as exc:
            _write(
                sys.stderr,
                f"onnxparity: cannot write the merged report to {args.output}: {write_problem(args.output, exc)}\n",
            )
            return 2
        _write(
            sys.stdout, f"merged {len(args.reports)} reports, {len(merged['items'])} items -> {args.output}\n"
        )
        if merged.get("interrupted"):  # written for inspection; the gate refuses it
            _write(sys.stderr, f"onnxparity: the merged report is incomplete: {document.completeness(merged)}\n")
        return 0
    except document.ReportError as exc:
        _write(sys.stderr, f"onnxparity: {exc}\n")
        return 2


def _check(args: argparse.Namespace) -> int:
    """``onnxparity check MODEL.onnx``: the prebuilt-file check against the ONNX reference
    evaluator, printed as under pytest, with the report and page where asked."""
    import os
    import warnings

    import onnxparity as op
    from onnxparity.config import ParityConfig
    from onnxparity.errors import OnnxParityError, WeakCheck
    from onnxparity.planning import Item
    from onnxparity.report.html import page
    from onnxparity.runner import ParitySession

    path = args.model
    if args.data and args.inputs:
        _write(sys.stderr, "onnxparity check: --data and --inputs both say what the inputs are: give one\n")
        return 2
    if args.data and args.examples is not None:
        _write(sys.stderr, "onnxparity check: --data checks each stored pair once (nothing is drawn): drop --examples\n")
        return 2
    stored = _stored(path, args.data) if args.data else None
    if isinstance(stored, str):
        _write(sys.stderr, f"onnxparity check: {stored}\n")
        return 2
    reference = _reference(path) if stored is None else None
    if isinstance(reference, str):
        _write(sys.stderr, f"onnxparity check: {path}: {reference}\n")
        return 2
    declared: dict[str, Any] = {}
    if args.inputs:
        try:
            declared = declarations(args.inputs)
        except (OSError, ValueError, TypeError, OnnxParityError) as exc:
            _write(sys.stderr, f"onnxparity check: --inputs {args.inputs}: {exc}\n")
            return 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.atol is not None or args.rtol is not None:
        given = {k: v for k, v in (("atol", args.atol), ("rtol", args.rtol)) if v is not None}
        declared["tolerance"] = op.Tolerance(**given)
    name = os.path.basename(path)
    examples = int(args.examples) if args.examples is not None else None
    config = ParityConfig(seed=args.seed, reproducer_dir=os.path.join(".onnxparity", "reproducers"))

    def progress(item: str, variant: str, done: int, total: int, example: str) -> None:
        _write(sys.stderr, f"  {variant}: {done} of {total} examples ({example})\n")

    # (label, reference, declarations, examples): the evaluator on drawn inputs, or each stored pair
    runs = [("", reference, declared, examples)]
    if stored is not None:
        runs = [(f"[{pair.name}]", pair.reference, {**declared, "inputs": fixed}, 1) for pair, fixed in stored]
    plural = "s" if len(runs) > 1 else ""
    against = "the ONNX reference evaluator" if stored is None else f"{len(runs)} stored pair{plural} in {args.data}"
    results = []
    with ParitySession(config) as session, warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakCheck)  # (the table marks a weak pass and says why)
        session.progress = progress
        _write(sys.stderr, f"checking {path} on {', '.join(variants)} against {against}\n")
        for label, expected, declaration, count in runs:
            try:
                checked = op.check(
                    onnx=path,
                    reference=expected,
                    variants=variants,
                    examples=count,
                    name=name + label,
                    session=session,
                    reproducer_dir=config.reproducer_dir,
                    **declaration,
                )
            except OnnxParityError as exc:
                _write(sys.stderr, f"onnxparity check: {label and label + ': '}{type(exc).__name__}: {exc}\n")
                return 2
            results.append((label, checked))
    entries = [
        document.entry(
            f"{path}{label}::{variant}", path + label, Item("parity", variant, variant), r.status, r.to_dict(), checked
        )
        for label, checked in results
        for variant, r in checked.variants.items()
    ]
    ran = 1 if stored is not None else examples or config.examples  # (--data: one example a pair)
    report = document.build(entries, settings={"examples": ran, "variants": variants}, planned=len(entries))
    lines = render.terminal(report)
    for label, checked in results:
        for variant, r in checked.variants.items():
            if r.status in ("failed", "error"):
                lines += ["", f"{variant}{label}: {r.status}", *r.message.splitlines()]
    _write(sys.stdout, render.show(lines))
    text: Callable[[], str]
    for option, target, text in (
        ("--report", args.report, lambda: document.dumps(report)),
        ("--html", args.html, lambda: page(report, title=f"ONNX parity: {name}")),
    ):
        if target:
            try:
                document.write_atomic(target, text())
            except OSError as exc:
                _write(sys.stderr, f"onnxparity check: cannot write {option} {target}: {write_problem(target, exc)}\n")
                return 2
            _write(sys.stdout, f"{option[2:]}: {target}\n")
    statuses = {r.status for _, checked in results for r in checked.variants.values()}
    return 2 if "error" in statuses else 1 if "failed" in statuses else 0


def _stored(path: str, folder: str) -> list[tuple[Pair, list[Input]]] | str:
    """(pair, its fixed declarations) for each stored pair in ``folder``, or what is wrong."""
    import os

    from onnxparity.errors import OnnxParityError
    from onnxparity.exporters.prebuilt import read_proto
    from onnxparity.graph.datasets import fixed_inputs, read_pairs

    if not os.path.isfile(path):
        return f"{path}: no such file"
    try:
        proto = read_proto(path)
        return [(pair, fixed_inputs(pair, proto)) for pair in read_pairs(folder, proto)]
    except OnnxParityError as exc:
        return f"--data {folder}: {exc}"


def declarations(path: str) -> dict[str, Any]:
    """``inputs=`` and ``dims=`` from an ``--inputs`` JSON file; a ValueError, TypeError or
    InvalidSpec naming the entry that is wrong."""
    import json

    import onnxparity as op

    with open(path, encoding="utf-8") as f:
        try:
            found = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(found, dict) or not isinstance(found.get("inputs"), list) or not found["inputs"]:
        raise ValueError('give an object with "inputs": a list of inputs, each op.Input\'s arguments')
    unknown = sorted(set(found) - {"inputs", "dims"})
    if unknown:
        raise ValueError(f"unknown keys {unknown}: the file takes \"inputs\" and \"dims\"")
    inputs = []
    for n, item in enumerate(found["inputs"]):
        if not isinstance(item, dict) or "name" not in item or "shape" not in item:
            raise ValueError(f"inputs[{n}]: give an object with at least \"name\" and \"shape\"")
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}
        try:
            inputs.append(op.Input(**fields))
        except TypeError as exc:
            raise TypeError(f"inputs[{n}]: {exc}") from None
        except op.InvalidSpec as exc:
            raise op.InvalidSpec(f"inputs[{n}]: {exc}") from None
    dims = {}
    for name, bounds in (found.get("dims") or {}).items():
        if not isinstance(bounds, list) or len(bounds) not in (2, 3):
            raise ValueError(f"dims[{name!r}]: give [min, max] or [min, max, multiple_of], got {bounds!r}")
        dims[name] = op.Dim(*bounds)
    return {"inputs": inputs, "dims": dims} if dims else {"inputs": inputs}


def _reference(path: str) -> Callable[..., list[Any]] | str:
    """The ONNX reference evaluator on ``path`` (the ``onnx-reference`` variant's runnable) as a
    ``reference=`` callable taking the graph's inputs (initializers aside) in order; or why
    ``path`` gives none: no file, not an ONNX model, ops the evaluator does not run."""
    import os

    from onnxparity.errors import OnnxParityError, ReferenceCannotRun
    from onnxparity.variants import VariantRunError
    from onnxparity.variants.reference import ReferenceRunnable

    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "a folder, not an .onnx file"
    try:
        runnable = ReferenceRunnable(path)
    except OnnxParityError as exc:
        return f"the ONNX reference evaluator cannot be the reference: {exc}"
    except Exception as exc:  # protobuf's DecodeError and friends
        return f"not an ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'})"
    initializers = {t.name for t in runnable.model.graph.initializer}
    names = [i.name for i in runnable.model.graph.input if i.name not in initializers]

    def evaluate(*arrays: Any) -> list[Any]:
        try:
            return runnable.run(dict(zip(names, arrays)))
        except VariantRunError as exc:  # the evaluator's limit or the input's fault: not the file's verdict
            raise ReferenceCannotRun(f"the ONNX reference evaluator raised {exc}") from None

    evaluate.onnx_reference_evaluator = True  # type: ignore[attr-defined]  # (the diagnosis reads it)
    return evaluate


def _pages(args: argparse.Namespace) -> int:
    from onnxparity.report.html import page

    if args.action == "history":
        paths = list(args.reports)
        reports = history.labelled(paths, [document.load(p) for p in paths])
        _write(sys.stdout, render.show(history.lines(reports)))
        current, baseline, output = reports[-1][1], None, args.output
    else:
        paths = [*args.history, args.report]
        current = document.load(args.report)
        reports = history.labelled(paths, [document.load(p) for p in args.history] + [current])
        baseline = document.load(args.baseline) if args.baseline else None
        output = args.output
    if not output:
        return 0
    text = page(current, baseline, reports if len(reports) > 1 else ())
    try:
        document.write_atomic(output, text)
    except OSError as exc:
        _write(sys.stderr, f"onnxparity: cannot write the page to {output}: {write_problem(output, exc)}\n")
        return 2
    _write(sys.stdout, f"wrote {output} ({len(text) // 1024} KiB, {len(current['items'])} items)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
