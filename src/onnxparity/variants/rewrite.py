"""Rewrites: variants that run a post-export step on the exported file — a simplifier, a fusion
optimizer, ONNX Runtime's offline optimization, a team's own graph surgery — and check what the
step wrote against the framework like any other variant.

A rewrite is a ``ModelProto -> ModelProto`` function. :func:`build_rewrite` runs it once per
model and options (stored in the persistent cache beside the export, keyed by what the step is:
a library's version, a user function's code), checks that the rewritten graph keeps the export's
inputs and outputs, records what it did (node counts, op types added and removed, dims it
fixed: the report's ``build``), and returns a :class:`RewriteRunnable` over the result.
:func:`register_rewrite` makes a variant of any such function in one line.

A failing input of a rewrite is localized by forensics against the export, value by value
(:func:`onnxparity.forensics.rewrite.explain_rewrite`): the runnable keeps the export's path,
and each intermediate file of a step made of several (a fusion, then float16).
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from onnxparity.environment import quiet, working_directory
from onnxparity.errors import InvalidSpec, OnnxParityError, VariantBuildError
from onnxparity.graph.files import load_model, save_model
from onnxparity.variants.base import BuildContext, VariantInfo, variant_info
from onnxparity.variants.ort import OPTIMIZATION_LEVELS, OrtRunnable

if TYPE_CHECKING:
    from onnxparity.spec import Policy

#: what third-party steps log to, kept quiet while they run
STEP_LOGGERS = ("root", "onnxruntime", "onnx", "onnxslim", "onnxsim", "onnxscript", "onnx_ir")


class RewriteRunnable(OrtRunnable):
    """An ONNX Runtime session over a rewritten export, with what forensics needs to say where
    and by which step it parts from the export: ``export_path``, the ``step``'s name, ``stages``
    (``(label, path)`` of each intermediate file, in order: the fused float32 graph before its
    float16 conversion), ``twin`` (an ONNX file standing for a file whose values cannot be
    listed, the ``.ort`` format's) and ``fusion`` (how to run the fusion optimizer again with
    one fusion off)."""

    def __init__(
        self,
        path: str,
        *,
        export_path: str,
        step: str,
        facts: Mapping[str, Any],
        stages: Sequence[tuple[str, str]] = (),
        twin: str | None = None,
        fusion: Mapping[str, Any] | None = None,
        policy: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(path, ["CPUExecutionProvider"], **options)
        self.export_path = export_path
        self.step = step
        self.build_facts = dict(facts)
        self.stages = tuple(stages)
        self.twin = twin
        self.fusion = dict(fusion) if fusion else None
        self.policy = policy


def op_counts(model: Any) -> collections.Counter[str]:
    """Top-level nodes by op type (a domain other than ONNX's prefixed: ``com.microsoft.Attention``)."""
    return collections.Counter(
        (f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type) for n in model.graph.node
    )


def _dims(values: Any) -> dict[str, list[str | int]]:
    return {
        v.name: [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in v.type.tensor_type.shape.dim]
        for v in values
        if v.type.HasField("tensor_type")
    }


def interface_changes(export: Any, rewritten: Any, step: str) -> list[str]:
    """The dims the step fixed (an input or output the export leaves dynamic, fixed in the
    rewritten file: what ONNX Runtime will refuse any other size of). Raises
    :class:`VariantBuildError` where the step dropped or renamed an input or output."""
    for kind in ("input", "output"):
        before = [v.name for v in getattr(export.graph, kind)]
        after: Any = [v.name for v in getattr(rewritten.graph, kind)]  # (names here, dims by name below)
        if [n for n in before if n not in after] or (kind == "output" and before != after):
            raise VariantBuildError(
                f"{step} changed the model's {kind}s: the export's are {before}, the rewritten file's {after}; a "
                f"deployment feeding or reading the export's names would break"
            )
    fixed = []
    for kind in ("input", "output"):
        after = _dims(getattr(rewritten.graph, kind))
        for name, dims in _dims(getattr(export.graph, kind)).items():
            new = after.get(name, dims)
            for axis, (old, now) in enumerate(zip(dims, new)):
                if isinstance(old, str) and old not in ("", "?") and isinstance(now, int):
                    fixed.append(f"{kind} {name!r} dim {axis} ({old!r}) fixed at {now}")
    return fixed


def _facts(
    step: str, what: str, export: Any, rewritten: Any, fixed: list[str], extra: Mapping[str, Any]
) -> dict[str, Any]:
    before, after = op_counts(export), op_counts(rewritten)
    return {
        "step": step,
        "what": what,
        "nodes": [sum(before.values()), sum(after.values())],
        "ops_added": {k: after[k] - before[k] for k in sorted(after) if after[k] > before[k]},
        "ops_removed": {k: before[k] - after[k] for k in sorted(before) if before[k] > after[k]},
        "fixed_dims": fixed,
        **extra,
    }


def describe(facts: Mapping[str, Any]) -> str:
    """One line of what a step did: ``onnxslim (onnxslim.slim): 52 -> 31 nodes; added ...``."""
    nodes = facts.get("nodes") or [0, 0]
    parts = [f"{facts.get('step', 'the step')} ({facts.get('what', '')}): {nodes[0]} -> {nodes[1]} nodes"]
    for key, word in (("fusions", "fused"), ("ops_added", "added"), ("ops_removed", "removed")):
        counts = facts.get(key) or {}
        if counts and not (key == "ops_added" and facts.get("fusions")):
            shown = ", ".join(f"{k} x{v}" for k, v in list(counts.items())[:8])
            parts.append(f"{word} {shown}")
    if facts.get("fixed_dims"):
        parts.append("dims fixed: " + "; ".join(d.replace(" fixed at ", " = ") for d in facts["fixed_dims"][:4]))
    return "; ".join(parts)


def run_step(
    context: BuildContext,
    step: str,
    rewrite: Callable[[Any], Any],
    *,
    parts: Mapping[str, Any],
    what: str,
    target: str | None = None,
    extra: Callable[[Any, Any], Mapping[str, Any]] | None = None,
    source: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """(the rewritten file's path, what the step did): ``rewrite(export ModelProto)`` run in the
    variant's own folder (a step that writes temporary files writes them there) with its logs
    and prints kept out of the user's output, once per model, options and ``parts`` (what else
    decides the result: a library's version, a function's code), stored in the persistent cache
    with its facts. ``extra(export, rewritten)``: more facts (a fusion optimizer's counts);
    ``source``: the file the step rewrites, when not the export (a step after another)."""
    import onnx

    target = target or os.path.join(context.workdir, f"{step}.onnx")
    facts_path = target + ".json"

    def convert() -> None:
        export = load_model(source or context.model_path, external_data=True)
        try:
            with quiet(*STEP_LOGGERS, native=True), working_directory(context.workdir):
                rewritten = rewrite(_copy(export))
        except OnnxParityError:
            raise
        except Exception as exc:
            raise VariantBuildError(f"{step} failed on the export: {type(exc).__name__}: {exc}") from exc
        if not isinstance(rewritten, onnx.ModelProto):
            raise VariantBuildError(
                f"{step} returned {type(rewritten).__name__}, not an onnx.ModelProto: a rewrite takes the "
                "export's ModelProto and returns the rewritten one"
            )
        fixed = interface_changes(export, rewritten, step)
        facts = _facts(step, what, export, rewritten, fixed, extra(export, rewritten) if extra else {})
        save_model(rewritten, target)
        with open(facts_path, "w", encoding="utf-8") as out:
            json.dump(facts, out)

    context.stored(step, parts, [target, facts_path], convert)
    with open(facts_path, encoding="utf-8") as stored:
        return target, json.load(stored)


def _copy(model: Any) -> Any:
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def build_rewrite(
    context: BuildContext,
    step: str,
    rewrite: Callable[[Any], Any],
    *,
    parts: Mapping[str, Any],
    what: str,
    known: Sequence[str] = (),
    policy: Any = None,
) -> RewriteRunnable:
    """A :class:`RewriteRunnable` over ``rewrite``'s result (:func:`run_step`), run by ONNX
    Runtime at the ``optimization`` option's level (``"all"``: as a deployment loads it)."""
    context.check_options({"optimization", *known})
    optimization = context.option("optimization", "all", OPTIMIZATION_LEVELS)
    path, facts = run_step(context, step, rewrite, parts=parts, what=what)
    return RewriteRunnable(
        path,
        export_path=context.model_path,
        step=step,
        facts=facts,
        policy=policy,
        threads=context.threads,
        optimization=optimization,
    )


def _code_identity(function: Callable[..., Any]) -> tuple[str, str | None]:
    """(a digest of ``function``'s code and what it reaches, why it cannot key the cache)."""
    from onnxparity.exporters.identity import origin_digest

    try:
        identity = origin_digest(function)
    except Exception as exc:  # an identity that cannot be computed never reuses a stored file
        return "", f"{type(exc).__name__}: {exc}"
    if not identity.digest:
        return "", f"{getattr(function, '__qualname__', function)!r} is not a Python function"
    return identity.digest, identity.why


def register_rewrite(
    name: str,
    rewrite: Callable[[Any], Any],
    *,
    description: str = "",
    default_policy: Policy | None = None,
    replace: bool = False,
) -> VariantInfo:
    """Make ``name`` a variant that runs ``rewrite`` (``onnx.ModelProto -> onnx.ModelProto``: a
    team's own graph surgery) on the export and checks its result against the framework, with
    the built-in rewrites' reporting (``build`` in the report), caching (the result is stored
    keyed by the function's code and what it reaches; a function whose code has no stable
    digest is run afresh each session) and forensics (the first value that parts from the
    export, by name). Variant options: ``optimization`` (ONNX Runtime's level for the result,
    "all"). Returns the registered :class:`~onnxparity.variants.VariantInfo`."""
    from onnxparity.variants import register_variant

    if not callable(rewrite):
        raise InvalidSpec(f"register_rewrite({name!r}): rewrite must be a function ModelProto -> ModelProto")
    what = getattr(rewrite, "__qualname__", type(rewrite).__name__)

    def build(context: BuildContext) -> RewriteRunnable:
        digest, why = _code_identity(rewrite)
        if why is not None or not digest:
            context = _uncached(context)
        return build_rewrite(context, name, rewrite, parts={"code": digest}, what=what)

    def key_parts() -> dict[str, str] | None:
        """What keys a reused result besides the model: the function's code (None: no digest)."""
        digest, why = _code_identity(rewrite)
        return {"code": digest} if digest and why is None else None

    build.key_parts = key_parts  # type: ignore[attr-defined]

    return register_variant(
        name,
        build,
        description=description or f"the export rewritten by {what}, run by ONNX Runtime on the CPU",
        default_policy=default_policy,
        replace=replace,
    )


def _uncached(context: BuildContext) -> BuildContext:
    import dataclasses

    return dataclasses.replace(context, cache_key="")


# -- ONNX Runtime's own saved graphs ---------------------------------------------------------------
def _saved(context: BuildContext, target: str, level: str, ort_format: bool) -> None:
    """ONNX Runtime's graph of the export optimized at ``level``, saved to ``target`` (the ORT
    format where ``ort_format``, else ONNX with its weights beside it)."""
    import onnxruntime as ort

    from onnxparity.variants.ort import session_options

    options = session_options(context.threads, level)
    options.optimized_model_filepath = target
    if ort_format:
        options.add_session_config_entry("session.save_model_format", "ORT")
    else:  # weights an exporter kept as external data go beside the saved graph
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", os.path.basename(target) + ".data"
        )
    try:
        with working_directory(context.workdir):
            ort.InferenceSession(context.model_path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise VariantBuildError(f"ONNX Runtime could not save the optimized model: {exc}") from exc


def build_ort_offline(context: BuildContext) -> RewriteRunnable:
    """``ort-offline``: ONNX Runtime's graph of the export saved at its highest level
    (``optimized_model_filepath``; option ``level``: "all", "extended", "basic"), reloaded with
    graph optimizations off — what a deployment that pre-optimizes runs."""
    import onnxruntime as ort

    context.check_options({"level"})
    level = context.option("level", "all", ("all", "extended", "basic"))
    target = os.path.join(context.workdir, "offline.onnx")

    def save(export: Any) -> Any:
        _saved(context, target, level, ort_format=False)
        return load_model(target, external_data=True)

    path, facts = run_step(
        context, "ort-offline", save, parts={"level": level}, what=f"ONNX Runtime {ort.__version__}, level {level}",
        target=os.path.join(context.workdir, "offline-kept.onnx"),
    )
    return RewriteRunnable(
        path, export_path=context.model_path, step="ort-offline", facts=facts, threads=context.threads,
        optimization="none",
    )


def build_ort_format(context: BuildContext) -> RewriteRunnable:
    """``ort-format``: the export converted to the ORT format (``.ort``, what mobile and minimal
    builds load), optimized at ``level`` ("extended" by default, as ONNX Runtime's converter
    recommends: "all" adds layouts for this machine's CPU), run from the ``.ort`` file with
    optimizations off. Its values cannot be listed, so forensics reads the same optimization
    saved as ONNX (the ``twin``) and says whether the two agree."""
    import onnxruntime as ort

    context.check_options({"level"})
    level = context.option("level", "extended", ("all", "extended", "basic"))
    target = os.path.join(context.workdir, "model.ort")
    twin = os.path.join(context.workdir, "twin.onnx")

    def convert() -> None:
        _saved(context, target, level, ort_format=True)
        _saved(context, twin, level, ort_format=False)

    context.stored("ort-format", {"level": level}, [target, twin], convert)
    export, saved = load_model(context.model_path, external_data=True), load_model(twin, external_data=True)
    facts = _facts("ort-format", f"ONNX Runtime {ort.__version__}, level {level}", export, saved, [], {})
    return RewriteRunnable(
        target, export_path=context.model_path, step="ort-format", facts=facts, twin=twin,
        threads=context.threads, optimization="none",
    )


ORT_OFFLINE = variant_info(
    "ort-offline",
    build_ort_offline,
    description="ONNX Runtime's graph saved after offline optimization (level all), reloaded with optimizations off",
)
ORT_FORMAT = variant_info(
    "ort-format",
    build_ort_format,
    description="the export converted to the ORT format (.ort, level extended), run from the .ort file",
)
