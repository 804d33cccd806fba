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
from onnxparity.spec import Agreement, Dim, Input, Latency, Opset, Output, ParitySpec, Tolerance

# every built-in variant, for a marker's ``variants=``: lossless ONNX Runtime CPU (with and
# without graph optimizations), CUDA (skipped without a GPU), int8 dynamic and static, fp16,
# and the ONNX reference evaluator — the names of :mod:`onnxparity.variants`' table
from onnxparity.variants import ALL_VARIANTS

if TYPE_CHECKING:
    from onnxparity.exporters import ExportedModel, Exporter, register_exporter
    from onnxparity.results import CheckResult
    from onnxparity.runner import ParitySession
    from onnxparity.variants import BuildContext, Runnable, VariantInfo

__version__ = "0.1.0"

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
    "Output",
    "ParityFailure",
    "ParitySpec",
    "Tolerance",
    "register_rewrite",
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
    reference: Callable[..., Any] | None = None,
    opset: int | Opset | None = None,
    latency: Latency | Sequence[Latency] | None = None,
    examples: int | None = None,
    name: str | None = None,
    reproducer_dir: str | os.PathLike[str] = ".onnxparity/reproducers",
    session: ParitySession | None = None,
    data: Any = None,
    variant_options: Mapping[str, Mapping[str, Any]] | None = None,
    calibration: Iterable[Mapping[str, Any]] | None = None,
    latency_mode: str | None = None,
    outputs: Output | Iterable[Output] | None = None,
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
    or ``"off"`` (default with ``session``: the session's mode). ``outputs=[op.Output("boxes",
    unordered=True)]`` declares outputs whose rows have no fixed order (detections): compared as
    a set, or sorted first (``sort_by=``); see :class:`Output`.
    """
    import contextlib

    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession
    from onnxparity.runner.check import run_check, warn_weak

    def declared() -> dict[str, Any]:
        """This call's declaration, as build_spec takes it."""
        return dict(
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
            outputs=outputs if outputs is not None else (),
        )

    def opened() -> contextlib.AbstractContextManager[ParitySession]:
        """The caller's session (left open), else one of our own for this call."""
        if session is not None:
            return contextlib.nullcontext(session)
        config = ParityConfig(reproducer_dir=os.fspath(reproducer_dir), latency=latency_mode or "enforce")
        return ParitySession(config)

    result = run_check(
        model,
        onnx=onnx,
        reference=reference,
        arguments=declared,
        session=opened,
        name=name,
        latency_mode=latency_mode if session is not None else None,  # our own session has it
    )
    warn_weak(result)
    return result


def register_variant(
    name: str,
    build: Callable[[BuildContext], Runnable],
    *,
    description: str = "",
    default_policy: Tolerance | Agreement | None = None,
    max_examples: int | None = None,
    requires_gpu: bool = False,
    crash_hint: str = "",
    rounds_inputs: str | None = None,
    replace: bool = False,
) -> VariantInfo:
    """Make ``name`` usable in ``variants=[...]``: ``build(context)`` returns an object with
    ``output_names`` and ``run(feeds) -> list of arrays``. A builder importable by name (a
    module-level function) is built and run in a worker process of its own, so a native crash
    fails only the item that hit it. ``rounds_inputs`` ("float16", "uint8"): how a lossy
    variant rounds its float inputs, so that its Agreement sets ill-conditioned examples aside.
    See docs/variants.md."""
    from onnxparity.variants import register_variant as _register

    return _register(
        name,
        build,
        description=description,
        default_policy=default_policy,
        max_examples=max_examples,
        requires_gpu=requires_gpu,
        crash_hint=crash_hint,
        rounds_inputs=rounds_inputs,
        replace=replace,
    )


def register_rewrite(
    name: str,
    rewrite: Callable[[Any], Any],
    *,
    description: str = "",
    default_policy: Tolerance | Agreement | None = None,
    replace: bool = False,
) -> VariantInfo:
    """Make ``name`` a variant that runs ``rewrite`` (``onnx.ModelProto -> onnx.ModelProto``: a
    team's own graph surgery) on the export and checks the result against the framework, with
    the built-in steps' reporting, caching and forensics. See docs/variants.md."""
    from onnxparity.variants.rewrite import register_rewrite as _register

    return _register(name, rewrite, description=description, default_policy=default_policy, replace=replace)


#: names served from :mod:`onnxparity.exporters` on first use: importing the model-source
#: registry (and its ONNX helpers) is not paid by a run that never names them.
_LAZY = {"Exporter", "ExportedModel", "register_exporter"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import onnxparity.exporters as exporters

        return getattr(exporters, name)
    raise AttributeError(f"module 'onnxparity' has no attribute {name!r}")
