"""onnxparity: does the exported ONNX model still compute what the original model computes?

Declare inputs with symbolic dims, and onnxparity exports the model, draws inputs over the
declared space with Hypothesis, runs each variant (ONNX Runtime CPU, ...) and compares it with
the framework's own output within a tolerance. Use it from pytest (``pytest --onnx-parity``
with the ``onnx_parity`` marker and fixture) or directly with :func:`check`.

Importing this package imports no framework (torch, tensorflow, sklearn) and no ONNX Runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from onnxparity.errors import (
    ExportError,
    FrameworkNotInstalled,
    InvalidSpec,
    OnnxParityError,
    ParityFailure,
    VariantBuildError,
    VariantUnavailable,
    WeakCheck,
)
from onnxparity.spec import Agreement, Dim, Input, Latency, Opset, ParitySpec, Tolerance

if TYPE_CHECKING:
    from onnxparity.exporters import ExportedModel, Exporter, register_exporter
    from onnxparity.results import CheckResult
    from onnxparity.runner import ParitySession
    from onnxparity.variants import BuildContext, Runnable

__version__ = "0.1.0"

#: every built-in variant, for a marker's ``variants=``: lossless ONNX Runtime CPU (with and
#: without graph optimizations), CUDA (skipped without a GPU), int8 dynamic and static, fp16,
#: and the ONNX reference evaluator.
ALL_VARIANTS = (
    "ort-cpu",
    "ort-cpu-noopt",
    "ort-gpu",
    "int8-dynamic",
    "int8-static",
    "fp16",
    "onnx-reference",
)

__all__ = [
    "ALL_VARIANTS",
    "Agreement",
    "Dim",
    "ExportError",
    "ExportedModel",
    "Exporter",
    "FrameworkNotInstalled",
    "Input",
    "InvalidSpec",
    "Latency",
    "Opset",
    "OnnxParityError",
    "ParityFailure",
    "ParitySpec",
    "Tolerance",
    "VariantBuildError",
    "VariantUnavailable",
    "WeakCheck",
    "check",
    "register_exporter",
    "register_variant",
]


def check(
    model: Any = None,
    *,
    inputs: Iterable[Input] | None = None,
    dims: Mapping[str, Dim] | None = None,
    variants: Sequence[str] = ("ort-cpu",),
    tolerance: Tolerance | Agreement | Mapping[str, Tolerance | Agreement] | None = None,
    onnx: Any = None,
    reference: Callable | None = None,
    opset: int | Opset | None = None,
    latency: Latency | Sequence[Latency] | None = None,
    examples: int | None = None,
    name: str | None = None,
    reproducer_dir: str | os.PathLike = ".onnxparity/reproducers",
    session: ParitySession | None = None,
    data: Any = None,
    variant_options: Mapping[str, Mapping[str, Any]] | None = None,
    calibration: Iterable[Mapping[str, Any]] | None = None,
    latency_mode: str | None = None,
) -> CheckResult:
    """Check ``model`` (or ``onnx`` against ``reference``) on every variant; return the result.

    ``onnx`` is an ONNX model you built yourself (path, bytes or ``onnx.ModelProto``): it is
    checked instead of exporting ``model``. ``reference`` is a callable taking the inputs as
    numpy arrays (in ``inputs`` order) and returning arrays, for models of other frameworks.
    Without ``inputs``, they are read from the model where it declares them (ONNX file, Keras,
    TF signature, fitted scikit-learn estimator), and undeclared dims range over 1..16.
    ``data`` (real rows: an array, a DataFrame or a dict of arrays by input name) is
    resampled and perturbed in addition to the declared ranges, and str inputs without
    categories learn them from it. Pass ``session`` to share exports and built variants.
    ``variant_options`` maps a variant to its builder's options; ``calibration`` (feed dicts)
    calibrates int8-static instead of drawn inputs. ``opset=op.Opset(...)`` and
    ``latency=op.Latency(...)`` add budget results (``result.budgets``); ``latency_mode`` is
    ``"enforce"`` (a broken latency budget fails; the default without ``session``), ``"report"``
    or ``"off"`` (default with ``session``: the session's mode).
    """
    from onnxparity.config import ParityConfig
    from onnxparity.exporters import resolve
    from onnxparity.planning import build_spec
    from onnxparity.runner import ParitySession

    subject = resolve(model, onnx=onnx, reference=reference)
    spec = build_spec(
        subject,
        data=data,
        inputs=inputs,
        dims=dims,
        variants=tuple(variants),
        tolerance=tolerance if tolerance is not None else {},
        opset=opset,
        examples=examples,
        variant_options=variant_options or {},
        latency=latency if latency is not None else (),
        calibration=calibration,
    )
    if session is not None:
        result = session.check(subject, spec=spec, name=name, data=data, latency_mode=latency_mode)
    else:
        config = ParityConfig(reproducer_dir=os.fspath(reproducer_dir), latency=latency_mode or "enforce")
        with ParitySession(config) as own:
            result = own.check(subject, spec=spec, name=name, data=data)
    _warn_weak(result)
    return result


def _warn_weak(result: CheckResult) -> None:
    """A :class:`WeakCheck` warning for every passing variant that could not have failed."""
    import warnings

    from onnxparity.verdict.power import weak_message

    for item, outcome in result.variants.items():
        if outcome.passed and outcome.power is not None and outcome.power.weak:
            warnings.warn(WeakCheck(weak_message(f"{result.name} [{item}]", outcome.power)), stacklevel=3)


def register_variant(
    name: str,
    build: Callable[[BuildContext], Runnable],
    *,
    description: str = "",
    default_policy: Tolerance | Agreement | None = None,
    max_examples: int | None = None,
    requires_gpu: bool = False,
    crash_hint: str = "",
    replace: bool = False,
):
    """Make ``name`` usable in ``variants=[...]``: ``build(context)`` returns an object with
    ``output_names`` and ``run(feeds) -> list of arrays``. A builder importable by name (a
    module-level function) is built and run in a worker process of its own, so a native crash
    fails only the item that hit it. See docs/variants.md."""
    from onnxparity.variants import register_variant as _register

    return _register(
        name,
        build,
        description=description,
        default_policy=default_policy,
        max_examples=max_examples,
        requires_gpu=requires_gpu,
        crash_hint=crash_hint,
        replace=replace,
    )


#: names served from :mod:`onnxparity.exporters` on first use: importing the model-source
#: registry (and its ONNX helpers) is not paid by a run that never names them.
_LAZY = {"Exporter", "ExportedModel", "register_exporter"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import onnxparity.exporters as exporters

        return getattr(exporters, name)
    raise AttributeError(f"module 'onnxparity' has no attribute {name!r}")
