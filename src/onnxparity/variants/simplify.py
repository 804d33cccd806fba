"""Simplifiers as variants: ``onnxslim``, ``onnxsim``, ``onnxoptimizer`` and the onnxscript
optimizer (``onnxscript-optimizer``), each run on the export (:mod:`.rewrite`) and its result
checked against the framework under the default tolerance (a simplifier must not change what
the graph computes).

Each is skipped, naming the extra that installs it, where its package is not installed. Their
known wrong results are constant folding through shape ops (a value computed from one input's
shape folded into a constant, or an input's dims fixed by ``input_shapes``), and fusions that
change an op's semantics; forensics names the folded value or the first rewritten node that
parts from the export.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onnxparity.environment import version
from onnxparity.errors import VariantBuildError, VariantUnavailable
from onnxparity.variants.base import BuildContext, variant_info
from onnxparity.variants.rewrite import RewriteRunnable, build_rewrite


def _require(module: str, package: str, extra: str = "simplify") -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise VariantUnavailable(
            f"{package} is not installed ({exc}); pip install 'onnxparity[{extra}]' (or pip install {package})"
        ) from None


def _shapes(context: BuildContext) -> dict[str, list[int]] | None:
    """The ``input_shapes`` option: input name -> fixed shape (fixing dims lets a simplifier fold
    shape computations; checked over the declared dims, it fails where they are dynamic)."""
    shapes = context.option("input_shapes", None)
    if shapes is None:
        return None
    if not isinstance(shapes, dict) or not all(
        isinstance(k, str) and isinstance(v, (list, tuple)) and all(isinstance(d, int) and d > 0 for d in v)
        for k, v in shapes.items()
    ):
        raise VariantBuildError(
            f"variant_options[{context.name!r}]['input_shapes']={shapes!r}: expected {{input name: [dim, ...]}} with "
            "positive integer dims"
        )
    return {k: list(v) for k, v in shapes.items()}


def build_onnxslim(context: BuildContext) -> RewriteRunnable:
    """``onnxslim.slim(model)``. Options: ``input_shapes`` ({name: [dims]}),
    ``skip_optimizations`` (of "constant_folding", "graph_fusion", "dead_node_elimination",
    "subexpression_elimination", "weight_tying"), ``skip_fusion_patterns`` ([...])."""
    slim = _require("onnxslim", "onnxslim")
    shapes = _shapes(context)
    skipped_steps = list(context.option("skip_optimizations", [], (list, tuple)))
    skipped = list(context.option("skip_fusion_patterns", [], (list, tuple)))

    def rewrite(model: Any) -> Any:
        kwargs: dict[str, Any] = {}
        if skipped_steps:
            kwargs["skip_optimizations"] = skipped_steps
        if shapes:
            kwargs["input_shapes"] = [f"{k}:{','.join(map(str, v))}" for k, v in shapes.items()]
        if skipped:
            kwargs["skip_fusion_patterns"] = skipped
        return slim.slim(model, **kwargs)

    return build_rewrite(
        context,
        "onnxslim",
        rewrite,
        parts={"version": version("onnxslim")},
        what=f"onnxslim {version('onnxslim')}",
        known=("input_shapes", "skip_optimizations", "skip_fusion_patterns"),
    )


def build_onnxsim(context: BuildContext) -> RewriteRunnable:
    """``onnxsim.simplify(model, check_n=0)``: onnxsim's own check is off (ours replaces it).
    Options: ``input_shapes`` ({name: [dims]}: ``overwrite_input_shapes``),
    ``skip_constant_folding`` (False), ``skipped_optimizers`` ([...])."""
    onnxsim = _require("onnxsim", "onnxsim")
    shapes = _shapes(context)
    skip_folding = context.option("skip_constant_folding", False, bool)
    skipped = list(context.option("skipped_optimizers", [], (list, tuple)))

    def rewrite(model: Any) -> Any:
        simplified, ok = onnxsim.simplify(
            model,
            check_n=0,
            overwrite_input_shapes=shapes,
            skip_constant_folding=skip_folding,
            skipped_optimizers=skipped or None,
        )
        if not ok:
            raise VariantBuildError("onnxsim.simplify reported that its result could not be validated")
        return simplified

    return build_rewrite(
        context,
        "onnxsim",
        rewrite,
        parts={"version": version("onnxsim")},
        what=f"onnxsim {version('onnxsim')}",
        known=("input_shapes", "skip_constant_folding", "skipped_optimizers"),
    )


def build_onnxoptimizer(context: BuildContext) -> RewriteRunnable:
    """``onnxoptimizer.optimize(model, passes)``: its default fuse-and-eliminate passes unless
    the ``passes`` option names others."""
    onnxoptimizer = _require("onnxoptimizer", "onnxoptimizer")
    passes = context.option("passes", None)
    if passes is not None:
        available = set(onnxoptimizer.get_available_passes())
        unknown = [p for p in passes if p not in available] if isinstance(passes, (list, tuple)) else [passes]
        if unknown:
            raise VariantBuildError(
                f"variant_options['onnxoptimizer']['passes']: unknown pass {unknown[0]!r}; onnxoptimizer has "
                f"{', '.join(sorted(available))}"
            )
        passes = list(passes)

    return build_rewrite(
        context,
        "onnxoptimizer",
        lambda model: onnxoptimizer.optimize(model, passes),
        parts={"version": version("onnxoptimizer"), "passes": passes},
        what=f"onnxoptimizer {version('onnxoptimizer')}" + (f", passes {passes}" if passes else ""),
        known=("passes",),
    )


def build_onnxscript_optimizer(context: BuildContext) -> RewriteRunnable:
    """``onnxscript.optimizer.optimize(model)`` (constant folding, dead code, function inlining)."""
    optimizer = _require("onnxscript.optimizer", "onnxscript", extra="torch")
    return build_rewrite(
        context,
        "onnxscript-optimizer",
        optimizer.optimize,
        parts={"version": version("onnxscript")},
        what=f"onnxscript {version('onnxscript')} optimizer",
    )


def _versions(*packages: str) -> Callable[[], dict[str, str | None]]:
    def key_parts() -> dict[str, str | None]:
        """The step's package versions, which key a reused result besides the model."""
        return {p: version(p) for p in packages}

    return key_parts


build_onnxslim.key_parts = _versions("onnxslim")  # type: ignore[attr-defined]
build_onnxsim.key_parts = _versions("onnxsim")  # type: ignore[attr-defined]
build_onnxoptimizer.key_parts = _versions("onnxoptimizer")  # type: ignore[attr-defined]
build_onnxscript_optimizer.key_parts = _versions("onnxscript", "onnx-ir")  # type: ignore[attr-defined]

_SKIPS = "; skipped when {} is not installed"
ONNXSLIM = variant_info(
    "onnxslim",
    build_onnxslim,
    description="the export simplified by onnxslim (constant folding, fusions)" + _SKIPS.format("onnxslim"),
)
ONNXSIM = variant_info(
    "onnxsim",
    build_onnxsim,
    description="the export simplified by onnxsim (constant folding, eliminations)" + _SKIPS.format("onnxsim"),
)
ONNXOPTIMIZER = variant_info(
    "onnxoptimizer",
    build_onnxoptimizer,
    description="the export through onnxoptimizer's fuse-and-eliminate passes" + _SKIPS.format("onnxoptimizer"),
)
ONNXSCRIPT_OPTIMIZER = variant_info(
    "onnxscript-optimizer",
    build_onnxscript_optimizer,
    description="the export through the onnxscript optimizer (constant folding, inlining)"
    + _SKIPS.format("onnxscript"),
)
