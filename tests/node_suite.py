"""The ONNX backend node tests as a conformance run of the prebuilt-file path.

Every single-op model the installed ``onnx`` generates (``onnx.backend.test.case.node``) is
checked as a new user would check a file nobody here wrote: inputs read from the graph,
``op.check(onnx=model, reference=<the ONNX reference evaluator>, variants=["ort-cpu"])``. Each
model gets one outcome:

- ``passed``;
- ``refused``: an :class:`~onnxparity.errors.OnnxParityError` before any example ran (a clear
  refusal that names what to declare, or a variant ONNX Runtime cannot build);
- ``failed``: a parity failure, then judged against the suite's own stored inputs and outputs
  (``judge``): ``ort-vs-spec`` when ONNX Runtime misses the stored output, ``evaluator`` when the
  reference evaluator does, ``false-alarm`` when both match it (our drawn inputs were outside
  what the op accepts, or our tolerance too tight);
- ``internal``: any other exception escaping ``op.check`` (a bug of ours).

Used by ``tests/test_conformance.py`` and ``scripts/node-suite.py``.
"""

from __future__ import annotations

import os
import traceback
import warnings
from typing import Any

import numpy as np

EXPECTED = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "conformance.json"
)


def cases() -> dict[str, Any]:
    """The node test cases of the installed onnx, by name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        return {c.name: c for c in collect_testcases()}


def evaluator(model):
    """The ONNX reference evaluator as a ``reference=`` callable (arrays in graph input order)."""
    from onnx.reference import ReferenceEvaluator

    initializers = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers]
    runner = ReferenceEvaluator(model)

    def reference(*arrays):
        return runner.run(None, dict(zip(names, arrays)))

    return reference


def _close(actual, expected, rtol: float, atol: float) -> bool:
    """Whether ``actual`` matches a stored output as the backend tests judge it."""
    if isinstance(expected, list):  # a sequence output
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_close(a, e, rtol, atol) for a, e in zip(actual, expected))
        )
    if expected is None:
        return actual is None
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return False
    if expected.dtype.kind in "fc":
        return bool(
            np.allclose(actual.astype(np.float64), expected.astype(np.float64), rtol, atol, equal_nan=True)
        )
    if expected.dtype.kind in "OUS":
        return actual.tolist() == expected.tolist()
    return bool(np.array_equal(actual, expected))


def judge(case) -> str:
    """Which side misses the suite's stored outputs on its stored inputs: ``ort-vs-spec``,
    ``evaluator``, ``both``, or ``false-alarm`` (neither: the failure came from our inputs or
    tolerance)."""
    import onnxruntime as ort
    from onnx import TensorProto, numpy_helper

    def array(value):  # the suite keeps bfloat16, float8 and int4 data sets as TensorProtos
        return numpy_helper.to_array(value) if isinstance(value, TensorProto) else value

    (inputs, outputs) = case.data_sets[0]
    inputs, outputs = [array(v) for v in inputs], [array(v) for v in outputs]
    initializers = {t.name for t in case.model.graph.initializer}
    names = [i.name for i in case.model.graph.input if i.name not in initializers]
    feeds = dict(zip(names, inputs))

    def matches(run) -> bool:
        try:
            got = run()
        except Exception:
            return False
        return len(got) == len(outputs) and all(
            _close(g, e, case.rtol, case.atol) for g, e in zip(got, outputs)
        )

    def run_ort():
        from onnxparity.variants.narrow import narrow_values, run_typed

        session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
        narrow_in, narrow_out = narrow_values(session.get_inputs()), narrow_values(session.get_outputs())
        if narrow_in or narrow_out:  # bfloat16, float8, int4: typed OrtValues (variants/narrow.py)
            names = [o.name for o in session.get_outputs()]
            return run_typed(session, feeds, names, narrow_in, narrow_out, None)
        return session.run(None, feeds)

    ort_ok = matches(run_ort)
    ref_ok = matches(lambda: evaluator(case.model)(*inputs))
    if ort_ok and ref_ok:
        return "false-alarm"
    if not ort_ok and not ref_ok:
        return "both"
    return "evaluator" if ort_ok else "ort-vs-spec"


def check_case(case, examples: int = 5, session: Any = None) -> tuple[str, str]:
    """(outcome, detail) of one node model (see the module docstring); ``session`` (a
    ParitySession) is shared across cases."""
    import onnxparity as op
    from onnxparity.errors import OnnxParityError

    try:
        reference = evaluator(case.model)
    except Exception as exc:  # the evaluator has no implementation (Scatter, deprecated)
        return "no-reference", f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = op.check(
                onnx=case.model,
                reference=reference,
                variants=["ort-cpu"],
                examples=examples,
                name=case.name,
                session=session,
            )
    except OnnxParityError as exc:
        return "refused", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
        return "internal", f"{type(exc).__name__}: {exc}{where}".splitlines()[0][:300]
    results = list(result.variants.values())
    statuses = {r.status for r in results}
    if statuses <= {"passed"}:
        return "passed", ""
    if statuses <= {"passed", "skipped"}:
        return "refused", next(r.message for r in results if r.status == "skipped").splitlines()[0][:300]
    message = next((r.message or r.status for r in results if r.status != "passed"), "")
    if "error" in statuses and "failed" not in statuses:
        return "refused", message.splitlines()[0][:300] if message else "error"
    return "failed", f"{judge(case)}: {message.splitlines()[0][:240] if message else ''}"


def run_all(
    names: list[str], workers: int = 2, timeout: float = 60.0, examples: int = 5, progress=None
) -> dict:
    """``{name: [outcome, detail]}`` of the named cases, each checked in one of ``workers``
    processes; a case still running after ``timeout`` seconds is a ``hang`` (its process is
    killed and replaced)."""
    import multiprocessing
    import time
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("fork")
    pending = list(reversed(names))
    results: dict[str, list[str]] = {}
    slots: list[dict] = []

    def spawn() -> dict:
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child, examples), daemon=True)
        process.start()
        child.close()
        return {"process": process, "pipe": parent, "case": None, "since": 0.0}

    def feed(slot: dict) -> None:
        if pending:
            slot["case"] = pending.pop()
            slot["since"] = time.monotonic()
            slot["pipe"].send(slot["case"])
        else:
            slot["case"] = None

    for _ in range(workers):
        slot = spawn()
        slots.append(slot)
        feed(slot)
    while any(s["case"] is not None for s in slots):
        busy = [s for s in slots if s["case"] is not None]
        ready = wait([s["pipe"] for s in busy], timeout=1.0)
        now = time.monotonic()
        for slot in busy:
            case = slot["case"]
            if slot["pipe"] in ready:
                try:
                    outcome, detail = slot["pipe"].recv()
                except EOFError:  # the worker died (a native crash)
                    outcome, detail = "internal", f"the worker process died (exit {slot['process'].exitcode})"
                    slot.update(spawn())
            elif now - slot["since"] > timeout:
                slot["process"].kill()
                outcome, detail = "hang", f"still running after {timeout:.0f} s"
                slot.update(spawn())
            else:
                continue
            results[case] = [outcome, detail]
            if progress is not None:
                progress(case, outcome, detail)
            feed(slot)
    for slot in slots:  # a clean exit removes the worker's reproducers; a stuck one is killed
        try:
            slot["pipe"].send(None)
        except OSError:
            pass
        slot["process"].join(timeout=10)
        if slot["process"].is_alive():
            slot["process"].kill()
    return results


def _serve(pipe, examples: int) -> None:
    import tempfile

    import onnxruntime

    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession

    onnxruntime.set_default_logger_severity(3)  # unused-initializer warnings of the suite's models
    known = cases()

    with (
        tempfile.TemporaryDirectory(prefix="node-suite-") as reproducers,
        ParitySession(ParityConfig(reproducer_dir=reproducers)) as session,
    ):
        while True:
            try:
                name = pipe.recv()
            except EOFError:
                return
            if name is None:
                return
            pipe.send(check_case(known[name], examples, session))
            if len(session._pairs) > 50:  # keep the worker's memory flat
                session.clear_example_caches()


#: why a model is refused, by the first pattern its message matches (in this order)
REFUSALS = (
    ("a kernel ONNX Runtime lacks", r"NOT_IMPLEMENTED|is not a registered function/op|Could not find an implementation"),
    ("a model ONNX Runtime cannot load", r"ONNX Runtime could not load the model"),
    ("an input no drawn value fits", r"so drawn values would be rejected"),
    ("a type onnxparity does not draw", r"onnxparity (draws|compares) tensors"),
    ("every drawn input rejected by both sides", r"was rejected by both"),
)


def refusal_reason(detail: str) -> str:
    """The category of a refusal (:data:`REFUSALS`), or ``other`` — which the conformance run
    does not allow: a refusal must say why in one of these ways."""
    import re

    return next((reason for reason, pattern in REFUSALS if re.search(pattern, detail)), "other")


def report(outcomes: dict, expected: dict) -> list[str]:
    """The run in categories: checked with a verdict (passed, and failures with a known reason
    from ``expected``, by kind), refused (by reason, the ops named), no reference, and anything
    else (new failures, internal errors, hangs)."""
    import collections
    import re

    passed = sorted(n for n, (o, _) in outcomes.items() if o == "passed")
    failed = sorted(n for n, (o, _) in outcomes.items() if o == "failed")
    known = [n for n in failed if n in expected["failures"]]
    lines = [
        f"{len(outcomes)} models: {len(passed) + len(known)} with a verdict ({len(passed)} passed, {len(known)} "
        "known differences)",
        "known differences, by kind and reason (fixtures/conformance.json):",
    ]
    reasons = collections.Counter((expected["failures"][n]["kind"], expected["failures"][n]["reason"]) for n in known)
    lines += [f"  {count:4d}  {kind}: {reason[:150]}" for (kind, reason), count in sorted(reasons.items())]
    refused = collections.defaultdict(list)
    for outcome, detail in outcomes.values():
        if outcome == "refused":
            refused[refusal_reason(detail)].append(detail)
    lines.append(f"refused: {sum(len(v) for v in refused.values())}")
    for reason, details in sorted(refused.items(), key=lambda kv: -len(kv[1])):
        found = (re.search(r"implementation for (\w+\(\d+\))|kernel for (\w+\(\d+\))|(\S+\(-?\d+\)) is not a", d) for d in details)
        ops = collections.Counter(next(g for g in m.groups() if g) for m in found if m)
        named = ", ".join(f"{op} ×{n}" if n > 1 else op for op, n in ops.most_common(12))
        lines.append(f"  {len(details):4d}  {reason}" + (f" ({named}{', ...' if len(ops) > 12 else ''})" if named else ""))
    others = collections.Counter(o for n, (o, _) in outcomes.items() if o not in ("passed", "refused", "failed"))
    others["new failure"] = len(failed) - len(known)
    lines += [f"  {count:4d}  {what}" for what, count in sorted(others.items()) if count]
    return lines
