"""Declarations of what a model accepts and what parity means: validated, immutable values.

Knows nothing of frameworks, ONNX Runtime or pytest. Every constructor validates its
arguments and raises :class:`InvalidSpec` naming the bad value and the fix.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import InvalidSpec

#: dtypes an :class:`Input` may declare, by canonical name.
SUPPORTED_DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int32", "int64", "bool", "str")

#: value range used when an Input gives no ``low``/``high``.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "float16": (-1.0, 1.0),
    "float32": (-1.0, 1.0),
    "float64": (-1.0, 1.0),
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int32": (0, 100),
    "int64": (0, 100),
    "bool": (0, 1),
    "str": (0, 1),
}

_INT_LIMITS = {name: np.iinfo(name) for name in ("int8", "uint8", "int32", "int64")}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


@dataclass(frozen=True)
class Dim:
    """A symbolic dimension's range: every value in ``[min, max]`` divisible by ``multiple_of``."""

    min: int
    max: int
    multiple_of: int = 1

    def __post_init__(self) -> None:
        for fname in ("min", "max", "multiple_of"):
            value = getattr(self, fname)
            if not _is_int(value):
                raise InvalidSpec(
                    f"Dim({fname}={value!r}): {fname} must be an integer, got {type(value).__name__}"
                )
            object.__setattr__(self, fname, int(value))
        if self.min < 1:
            raise InvalidSpec(f"Dim(min={self.min}): min must be at least 1")
        if self.multiple_of < 1:
            raise InvalidSpec(f"Dim(multiple_of={self.multiple_of}): multiple_of must be at least 1")
        if self.min > self.max:
            raise InvalidSpec(f"Dim(min={self.min}, max={self.max}): min is larger than max; swap them")
        if not self.values_count:
            raise InvalidSpec(
                f"Dim(min={self.min}, max={self.max}, multiple_of={self.multiple_of}): "
                f"no multiple of {self.multiple_of} lies in [{self.min}, {self.max}]"
            )

    @property
    def first(self) -> int:
        """The smallest allowed value."""
        m = self.multiple_of
        return -(-self.min // m) * m

    @property
    def last(self) -> int:
        """The largest allowed value."""
        return (self.max // self.multiple_of) * self.multiple_of

    @property
    def values_count(self) -> int:
        return max(0, (self.last - self.first) // self.multiple_of + 1)

    def value(self, index: int) -> int:
        """The ``index``-th allowed value (0 is :attr:`first`)."""
        return self.first + index * self.multiple_of

    def __contains__(self, value: object) -> bool:
        return (
            _is_int(value)
            and self.first <= value <= self.last  # type: ignore[operator]
            and value % self.multiple_of == 0  # type: ignore[operator]
        )


DimLike = int | str


@dataclass(frozen=True)
class Input:
    """One model input: name, shape (ints and symbolic dim names), dtype and value range.

    ``low`` and ``high`` are inclusive bounds of the values drawn; for integer inputs (token
    ids, indices) both are integers. Booleans take no range. String inputs (``dtype="str"``,
    tabular categories) draw from ``categories`` (given here, or learned from ``data=``).
    ``allow_nan=True`` lets float inputs contain NaN (a ``nan`` data pattern); by default no
    NaN is drawn, since frameworks and ONNX models often disagree on NaN by design.
    """

    name: str
    shape: tuple[DimLike, ...]
    dtype: str = "float32"
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] | None = None
    allow_nan: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidSpec(f"Input(name={self.name!r}): name must be a non-empty string")
        where = f"Input({self.name!r})"
        shape = self.shape
        if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
            raise InvalidSpec(f"{where}: shape must be a tuple of ints and dim names, got {shape!r}")
        shape = tuple(shape)
        for axis, entry in enumerate(shape):
            if isinstance(entry, str):
                if not entry.isidentifier():
                    raise InvalidSpec(f"{where}: dim name {entry!r} at axis {axis} must be an identifier")
            elif _is_int(entry):
                if entry < 1:
                    raise InvalidSpec(f"{where}: axis {axis} has size {entry}; sizes must be >= 1")
            else:
                raise InvalidSpec(
                    f"{where}: axis {axis} is {entry!r}; use an int or a dim name declared in dims="
                )
        object.__setattr__(self, "shape", tuple(e if isinstance(e, str) else int(e) for e in shape))

        dtype = _canonical_dtype(self.dtype, where)
        object.__setattr__(self, "dtype", dtype)
        if self.allow_nan and dtype not in ("float16", "float32", "float64"):
            raise InvalidSpec(f"{where}: allow_nan=True needs a float dtype, not {dtype}")

        if dtype == "str":
            if self.low is not None or self.high is not None:
                raise InvalidSpec(f"{where}: str inputs take categories=[...], not low/high")
            if self.categories is not None:
                categories = tuple(self.categories) if not isinstance(self.categories, str) else ()
                if not categories or not all(isinstance(c, str) for c in categories):
                    raise InvalidSpec(f"{where}: categories must be a non-empty list of strings")
                object.__setattr__(self, "categories", tuple(dict.fromkeys(categories)))
            return
        if self.categories is not None:
            raise InvalidSpec(f"{where}: categories= is for dtype='str' inputs only")

        if dtype == "bool":
            if self.low is not None or self.high is not None:
                raise InvalidSpec(f"{where}: bool inputs take no low/high")
            object.__setattr__(self, "low", 0)
            object.__setattr__(self, "high", 1)
            return
        low, high = DEFAULT_RANGES[dtype]
        low = low if self.low is None else self.low
        high = high if self.high is None else self.high
        for fname, value in (("low", low), ("high", high)):
            if not _is_real(value) or not math.isfinite(value):
                raise InvalidSpec(f"{where}: {fname}={value!r} must be a finite number")
        if dtype in _INT_LIMITS:
            for fname, value in (("low", low), ("high", high)):
                if float(value) != int(value):
                    raise InvalidSpec(f"{where}: {fname}={value!r} must be an integer for dtype {dtype}")
            low, high = int(low), int(high)
            info = _INT_LIMITS[dtype]
            if low < info.min or high > info.max:
                raise InvalidSpec(
                    f"{where}: range [{low}, {high}] does not fit dtype {dtype} ([{info.min}, {info.max}])"
                )
        else:
            low, high = float(low), float(high)
            if dtype == "float16" and max(abs(low), abs(high)) > 65504:
                raise InvalidSpec(f"{where}: range [{low}, {high}] does not fit float16 (±65504)")
        if low >= high:
            raise InvalidSpec(f"{where}: low={low} must be smaller than high={high} (both are inclusive)")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def dim_names(self) -> tuple[str, ...]:
        return tuple(e for e in self.shape if isinstance(e, str))

    def concrete_shape(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(dims[e] if isinstance(e, str) else e for e in self.shape)


def _canonical_dtype(dtype: Any, where: str) -> str:
    if dtype in (str, "str", "string", "object", object):
        return "str"
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in SUPPORTED_DTYPES:
        raise InvalidSpec(f"{where}: unsupported dtype {dtype!r}; use one of {', '.join(SUPPORTED_DTYPES)}")
    return name


@dataclass(frozen=True)
class Tolerance:
    """Elementwise closeness: ``|actual - expected| <= atol + rtol * |expected|``.

    NaN matches only NaN; an infinity matches only the same infinity; integer and bool
    outputs compare exactly whatever the tolerance.
    """

    atol: float = 1e-5
    rtol: float = 1e-4

    def __post_init__(self) -> None:
        for fname in ("atol", "rtol"):
            value = getattr(self, fname)
            if not _is_real(value) or not math.isfinite(value) or value < 0:
                raise InvalidSpec(f"Tolerance({fname}={value!r}): {fname} must be a finite number >= 0")
            object.__setattr__(self, fname, float(value))

    def describe(self) -> str:
        return f"atol={self.atol:g}, rtol={self.rtol:g}"

    def to_dict(self) -> dict:
        return {"kind": "tolerance", "atol": self.atol, "rtol": self.rtol}


#: the tolerance a lossless variant gets when the declaration names none.
DEFAULT_TOLERANCE = Tolerance()


@dataclass(frozen=True)
class Agreement:
    """A looser policy for lossy variants (int8, fp16) and for label outputs.

    Float outputs: ``cosine`` (cosine similarity of the whole output tensor, per example) and
    ``sqnr_db`` (signal-to-quantization-noise ratio, ``10·log10(Σe² / Σ(a−e)²)``, per example)
    must each hold on every example; ``top1`` (argmax over the last axis agrees) must hold for
    that fraction of rows counted over **every example** of the search. When none of the three
    is given, float outputs compare elementwise with ``tolerance`` (default :class:`Tolerance`);
    when some are given, ``tolerance`` is checked too only if you pass it. An output that
    matches within the default elementwise tolerance passes whatever the metrics, and NaN or
    infinity where the reference is finite (or the reverse) always fails.

    Exact outputs (class labels, ids): at least a ``labels`` fraction of their values must
    agree, counted over every row of every example — ``Agreement(labels=0.999)`` accepts one
    flip in a thousand (e.g. float64 inputs to trees whose thresholds skl2onnx stored as float32).
    """

    labels: float = 1.0
    tolerance: Tolerance | None = None
    top1: float | None = None
    cosine: float | None = None
    sqnr_db: float | None = None

    def __post_init__(self) -> None:
        if not _is_real(self.labels) or not 0 < self.labels <= 1:
            raise InvalidSpec(f"Agreement(labels={self.labels!r}): labels must be a fraction in (0, 1]")
        if self.tolerance is not None and not isinstance(self.tolerance, Tolerance):
            raise InvalidSpec(
                f"Agreement(tolerance={self.tolerance!r}): give op.Tolerance(atol=..., rtol=...)"
            )
        object.__setattr__(self, "labels", float(self.labels))
        if self.top1 is not None:
            if not _is_real(self.top1) or not 0 < self.top1 <= 1:
                raise InvalidSpec(f"Agreement(top1={self.top1!r}): top1 must be a fraction in (0, 1]")
            object.__setattr__(self, "top1", float(self.top1))
        if self.cosine is not None:
            if not _is_real(self.cosine) or not -1 < self.cosine <= 1:
                raise InvalidSpec(f"Agreement(cosine={self.cosine!r}): cosine must be in (-1, 1], e.g. 0.99")
            object.__setattr__(self, "cosine", float(self.cosine))
        if self.sqnr_db is not None:
            if not _is_real(self.sqnr_db) or not math.isfinite(self.sqnr_db):
                raise InvalidSpec(f"Agreement(sqnr_db={self.sqnr_db!r}): give a finite number of dB, e.g. 20")
            object.__setattr__(self, "sqnr_db", float(self.sqnr_db))

    @property
    def has_metrics(self) -> bool:
        """True when float outputs are judged by cosine, SQNR or top-1 agreement."""
        return self.top1 is not None or self.cosine is not None or self.sqnr_db is not None

    @property
    def float_tolerance(self) -> Tolerance | None:
        """The elementwise tolerance float outputs must also meet, or None when the metrics decide."""
        if self.tolerance is not None:
            return self.tolerance
        return None if self.has_metrics else DEFAULT_TOLERANCE

    def describe(self) -> str:
        parts = [
            f"{k}={v:g}"
            for k, v in (("top1", self.top1), ("cosine", self.cosine), ("sqnr_db", self.sqnr_db))
            if v is not None
        ]
        if self.labels < 1:
            parts.insert(0, f"labels={self.labels:g}")
        text = f"Agreement({', '.join(parts)})"
        tolerance = self.float_tolerance
        return f"{text} with {tolerance.describe()}" if tolerance is not None else text

    def to_dict(self) -> dict:
        tolerance = self.float_tolerance
        return {
            "kind": "agreement",
            "labels": self.labels,
            "top1": self.top1,
            "cosine": self.cosine,
            "sqnr_db": self.sqnr_db,
            "tolerance": None if tolerance is None else tolerance.to_dict(),
        }


#: what a tolerance= value may be.
Policy = Tolerance | Agreement


#: the default (standard) ONNX domain, by both of its spellings.
STANDARD_DOMAIN = ("", "ai.onnx")

#: operator domains an opset budget allows unless told otherwise.
DEFAULT_DOMAINS = ("ai.onnx", "ai.onnx.ml")


def _domain(name: str) -> str:
    return "ai.onnx" if name in STANDARD_DOMAIN else name


def _op_names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidSpec(f"{where}={value!r}: give a list of op types, e.g. ['Loop', 'If']")
    names = tuple(dict.fromkeys(value))
    if not all(isinstance(n, str) and n for n in names):
        raise InvalidSpec(f"{where}={value!r}: op types are non-empty strings such as 'Conv'")
    return names


@dataclass(frozen=True)
class Opset:
    """An opset budget: what the exported model may use.

    ``min``/``max`` bound the standard domain's opset (inclusive); ``target`` is the opset to
    export at (default: the exporter's). ``domains`` lists the operator domains allowed
    (``"ai.onnx"`` or ``""`` is the standard one; default standard and ``ai.onnx.ml``): a
    ``com.microsoft`` contrib op, which only ONNX Runtime runs, breaks the default budget.
    ``allowed_ops`` (if given) is every op type the model may contain; ``forbidden_ops`` the
    op types it must not (e.g. ``["Loop", "If"]`` for a static-graph target). ``check=True``
    runs ``onnx.checker.check_model(full_check=True)`` (with strict shape inference).
    ``matrix=[13, 17, 21]`` exports (or converts) at each opset and runs the parity variants at
    each: one item per (variant, opset).
    """

    min: int | None = None
    max: int | None = None
    target: int | None = None
    domains: tuple[str, ...] = DEFAULT_DOMAINS
    allowed_ops: tuple[str, ...] | None = None
    forbidden_ops: tuple[str, ...] = ()
    matrix: tuple[int, ...] = ()
    check: bool = True

    def __post_init__(self) -> None:
        for fname in ("min", "max", "target"):
            value = getattr(self, fname)
            if value is not None and (not _is_int(value) or value < 1):
                raise InvalidSpec(f"Opset({fname}={value!r}): give an ONNX opset number such as 17")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidSpec(f"Opset(min={self.min}, max={self.max}): min is larger than max")
        matrix = self.matrix
        if isinstance(matrix, int) or not isinstance(matrix, Iterable):
            raise InvalidSpec(f"Opset(matrix={matrix!r}): give a list of opsets, e.g. [13, 17, 21]")
        matrix = tuple(dict.fromkeys(matrix))
        for value in matrix:
            if not _is_int(value) or value < 1:
                raise InvalidSpec(f"Opset(matrix={self.matrix!r}): {value!r} is not an opset number")
        object.__setattr__(self, "matrix", tuple(int(v) for v in matrix))
        if self.target is not None and self.matrix:
            raise InvalidSpec(
                "Opset(target=..., matrix=...): give one; a matrix exports at each of its opsets"
            )
        for value in (self.target, *self.matrix):
            if value is not None and not self.admits(value):
                raise InvalidSpec(
                    f"Opset: opset {value} lies outside min={self.min}, max={self.max}; "
                    "the budget would fail its own export"
                )
        domains = self.domains
        if isinstance(domains, str) or not isinstance(domains, Iterable):
            raise InvalidSpec(f"Opset(domains={domains!r}): give a list such as ['ai.onnx', 'ai.onnx.ml']")
        object.__setattr__(self, "domains", tuple(dict.fromkeys(_domain(d) for d in domains)))
        if self.allowed_ops is not None:
            object.__setattr__(self, "allowed_ops", _op_names(self.allowed_ops, "Opset(allowed_ops)"))
        object.__setattr__(self, "forbidden_ops", _op_names(self.forbidden_ops, "Opset(forbidden_ops)"))
        both = set(self.allowed_ops or ()) & set(self.forbidden_ops)
        if both:
            raise InvalidSpec(f"Opset: {sorted(both)[0]!r} is both allowed and forbidden")
        if not isinstance(self.check, bool):
            raise InvalidSpec(f"Opset(check={self.check!r}): True or False")

    def admits(self, opset: int) -> bool:
        return (self.min is None or opset >= self.min) and (self.max is None or opset <= self.max)

    def describe(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in ("min", "max", "target") if getattr(self, k) is not None]
        if self.matrix:
            parts.append(f"matrix={list(self.matrix)}")
        if self.domains != DEFAULT_DOMAINS:
            parts.append(f"domains={list(self.domains)}")
        if self.allowed_ops is not None:
            parts.append(f"allowed_ops=[{len(self.allowed_ops)} types]")
        if self.forbidden_ops:
            parts.append(f"forbidden_ops={list(self.forbidden_ops)}")
        return f"Opset({', '.join(parts)})"

    def to_dict(self) -> dict:
        return {
            "min": self.min,
            "max": self.max,
            "target": self.target,
            "domains": list(self.domains),
            "allowed_ops": None if self.allowed_ops is None else list(self.allowed_ops),
            "forbidden_ops": list(self.forbidden_ops),
            "matrix": list(self.matrix),
            "check": self.check,
        }


@dataclass(frozen=True)
class Latency:
    """A latency budget for one variant, measured at concrete dims ``at``.

    ``p50_ms``/``p95_ms`` are absolute budgets; ``max_ratio`` bounds variant time / framework
    time, both measured interleaved in this process — the budget that holds on shared CI
    machines. None of them: the numbers are recorded only. ``threads`` is the intra-op thread
    count of both sides (1: measured to be the stable choice on shared runners). After
    ``warmup`` runs of each side, runs repeat until ``min_repeats`` and ``min_time_s`` are both
    reached (or ``max_time_s`` passes). Dims not in ``at`` take their smallest value.
    """

    variant: str = "ort-cpu"
    at: Mapping[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None
    max_ratio: float | None = None
    threads: int = 1
    warmup: int = 5
    min_repeats: int = 30
    min_time_s: float = 0.5
    max_time_s: float = 20.0

    def __post_init__(self) -> None:
        if not isinstance(self.variant, str) or not self.variant:
            raise InvalidSpec(f"Latency(variant={self.variant!r}): give a variant name such as 'ort-cpu'")
        if not isinstance(self.at, Mapping) or not all(
            isinstance(k, str) and _is_int(v) and v >= 1 for k, v in self.at.items()
        ):
            raise InvalidSpec(
                f"Latency(at={self.at!r}): give concrete dims, e.g. {{'batch': 1, 'size': 224}}"
            )
        object.__setattr__(self, "at", _freeze_mapping({k: int(v) for k, v in self.at.items()}))
        for fname in ("p50_ms", "p95_ms", "max_ratio", "min_time_s", "max_time_s"):
            value = getattr(self, fname)
            if value is not None and (not _is_real(value) or not math.isfinite(value) or value <= 0):
                raise InvalidSpec(f"Latency({fname}={value!r}): give a positive number")
        for fname in ("threads", "min_repeats"):
            value = getattr(self, fname)
            if not _is_int(value) or value < 1:
                raise InvalidSpec(f"Latency({fname}={value!r}): give a positive integer")
        if not _is_int(self.warmup) or self.warmup < 0:
            raise InvalidSpec(f"Latency(warmup={self.warmup!r}): give a number of runs >= 0")

    @property
    def budgets(self) -> dict[str, float]:
        return {
            k: getattr(self, k) for k in ("p50_ms", "p95_ms", "max_ratio") if getattr(self, k) is not None
        }

    def describe(self) -> str:
        parts = [f"variant={self.variant!r}"]
        if self.at:
            parts.append(f"at={dict(self.at)}")
        parts += [f"{k}={v:g}" for k, v in self.budgets.items()]
        return f"Latency({', '.join(parts)})"

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "at": dict(self.at),
            **{k: getattr(self, k) for k in ("p50_ms", "p95_ms", "max_ratio", "threads")},
        }


@dataclass(frozen=True)
class Item:
    """One pytest item of a declaration: a parity check of a variant (at an opset of a
    matrix), the opset budget, or a latency budget. ``id`` is the item's parameter id."""

    kind: str  # "parity", "opset" or "latency"
    id: str
    variant: str | None = None
    opset: int | None = None
    latency: Latency | None = None

    def __str__(self) -> str:
        return self.id


def plan_items(variants: Iterable[str], opset: Any = None, latency: Any = None) -> list[Item]:
    """The items a declaration makes, in order: parity items (one per variant, or per
    (variant, opset) for an opset matrix), then ``opset``, then ``latency-<variant>`` each."""
    if isinstance(variants, str):
        variants = (variants,)
    budget = opset if isinstance(opset, Opset) else None
    items: list[Item] = []
    for variant in variants:
        if budget is not None and budget.matrix:
            items += [Item("parity", f"{variant}-opset{n}", variant, n) for n in budget.matrix]
        else:
            items.append(Item("parity", str(variant), variant))
    if budget is not None:
        items.append(Item("opset", "opset"))
    for n, item in enumerate(_latencies(latency)):
        base = f"latency-{item.variant}"
        taken = {i.id for i in items}
        items.append(
            Item("latency", base if base not in taken else f"{base}-{n}", item.variant, latency=item)
        )
    return items


def _latencies(latency: Any) -> tuple[Latency, ...]:
    if latency is None:
        return ()
    if isinstance(latency, Latency):
        return (latency,)
    if isinstance(latency, (str, bytes)) or not isinstance(latency, Iterable):
        raise InvalidSpec(f"latency={latency!r}: give op.Latency(...) or a list of them")
    items = tuple(latency)
    for item in items:
        if not isinstance(item, Latency):
            raise InvalidSpec(f"latency: {item!r} is not an op.Latency(...)")
    return items


def _freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class ParitySpec:
    """Everything one parity check declares, validated as a whole.

    ``tolerance`` is one :class:`Tolerance` for every variant, or a mapping from a variant
    name or glob pattern (``"int8-*"``) to its policy (:class:`Tolerance` or
    :class:`Agreement`). Which applies to a variant: its exact name, else the longest matching
    pattern other than ``"*"``, else the variant's own default (lossy variants default to an
    :class:`Agreement`), else a ``"*"`` entry (a bare ``tolerance=op.Tolerance(...)`` is one),
    else :data:`DEFAULT_TOLERANCE`. So a bare Tolerance tunes the lossless variants and leaves
    ``int8-*``/``fp16`` on their documented defaults unless named.

    ``variant_options`` maps a variant name to the options its builder takes (e.g.
    ``{"ort-gpu": {"device_id": 1}, "int8-static": {"method": "entropy"}}``).
    """

    inputs: tuple[Input, ...]
    dims: Mapping[str, Dim] = field(default_factory=dict)
    variants: tuple[str, ...] = ("ort-cpu",)
    tolerance: Mapping[str, Tolerance] = field(default_factory=dict)
    opset: int | Opset | None = None
    examples: int | None = None
    variant_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    latency: tuple[Latency, ...] = ()
    #: the opset budget; ``opset`` is then the export opset (its target)
    opset_budget: Opset | None = None

    def __post_init__(self) -> None:
        inputs = self.inputs
        if isinstance(inputs, Input):
            inputs = (inputs,)
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
            raise InvalidSpec(f"inputs={inputs!r}: give a list of op.Input(...)")
        inputs = tuple(inputs)
        if not inputs:
            raise InvalidSpec("inputs=[]: declare at least one op.Input(name, shape, ...)")
        for item in inputs:
            if not isinstance(item, Input):
                raise InvalidSpec(f"inputs: {item!r} is not an op.Input(name, shape, ...)")
        names = [i.name for i in inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidSpec(f"inputs: the name {dupes[0]!r} is declared more than once")
        object.__setattr__(self, "inputs", inputs)

        if not isinstance(self.dims, Mapping):
            raise InvalidSpec(f"dims={self.dims!r}: give a dict of dim name -> op.Dim(min, max)")
        for name, dim in self.dims.items():
            if not isinstance(dim, Dim):
                raise InvalidSpec(f"dims[{name!r}]={dim!r}: use op.Dim(min, max)")
        used = {n for i in inputs for n in i.dim_names}
        for item in inputs:
            for axis, entry in enumerate(item.shape):
                if isinstance(entry, str) and entry not in self.dims:
                    known = ", ".join(sorted(self.dims)) or "none declared"
                    raise InvalidSpec(
                        f"Input({item.name!r}): unknown dim name {entry!r} at axis {axis} "
                        f"(known: {known}); declare it in dims={{{entry!r}: op.Dim(min, max)}}"
                    )
        unused = sorted(set(self.dims) - used)
        if unused:
            raise InvalidSpec(f"dims declares {unused[0]!r} but no input uses it; check its spelling")
        object.__setattr__(self, "dims", _freeze_mapping(self.dims))

        variants = self.variants
        if isinstance(variants, str):
            variants = (variants,)
        variants = tuple(variants)
        if not variants or not all(isinstance(v, str) and v for v in variants):
            raise InvalidSpec(f"variants={self.variants!r}: give a list of variant names")
        object.__setattr__(self, "variants", variants)

        tolerance = self.tolerance
        if isinstance(tolerance, (Tolerance, Agreement)):
            tolerance = {"*": tolerance}
        if not isinstance(tolerance, Mapping):
            raise InvalidSpec(
                f"tolerance={tolerance!r}: give op.Tolerance(...) or a dict variant -> Tolerance"
            )
        for key, value in tolerance.items():
            if not isinstance(key, str) or not isinstance(value, (Tolerance, Agreement)):
                raise InvalidSpec(
                    f"tolerance[{key!r}]={value!r}: keys are variant names or patterns, "
                    "values op.Tolerance(atol=..., rtol=...) or op.Agreement(labels=...)"
                )
        object.__setattr__(self, "tolerance", _freeze_mapping(tolerance))

        if isinstance(self.opset, Opset):
            object.__setattr__(self, "opset_budget", self.opset)
            object.__setattr__(self, "opset", self.opset.target)
        if self.opset_budget is not None and not isinstance(self.opset_budget, Opset):
            raise InvalidSpec(f"opset_budget={self.opset_budget!r}: give op.Opset(...)")
        if self.opset is not None and (not _is_int(self.opset) or self.opset < 7):
            raise InvalidSpec(f"opset={self.opset!r}: give an ONNX opset number such as 17, or op.Opset(...)")
        latency = _latencies(self.latency)
        for item in latency:
            for name, value in item.at.items():
                if name not in self.dims:
                    known = ", ".join(sorted(self.dims)) or "none declared"
                    raise InvalidSpec(f"{item.describe()}: at= names {name!r}, not a declared dim ({known})")
                if value not in self.dims[name]:
                    raise InvalidSpec(
                        f"{item.describe()}: {name}={value} is outside dims[{name!r}]={self.dims[name]}"
                    )
        object.__setattr__(self, "latency", latency)
        if self.examples is not None and (not _is_int(self.examples) or self.examples < 1):
            raise InvalidSpec(f"examples={self.examples!r}: give a positive number of examples")

        options = self.variant_options or {}
        if not isinstance(options, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) and all(isinstance(o, str) for o in v)
            for k, v in options.items()
        ):
            raise InvalidSpec(
                f"variant_options={options!r}: give a dict variant name -> dict of options, "
                "e.g. {'int8-static': {'method': 'entropy'}}"
            )
        object.__setattr__(
            self, "variant_options", _freeze_mapping({k: _freeze_mapping(v) for k, v in options.items()})
        )

    @property
    def symbolic_dims(self) -> tuple[str, ...]:
        """Dim names in order of first use across the inputs."""
        seen: dict[str, None] = {}
        for item in self.inputs:
            for name in item.dim_names:
                seen.setdefault(name, None)
        return tuple(seen)

    @functools.cached_property
    def input_digest(self) -> str:
        """A short digest of the inputs and dims: what an export and its examples depend on.
        Cached: it keys the reference cache on every drawn example."""
        text = repr((self.inputs, sorted(self.dims.items())))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def policy_for(self, variant: str, default: Policy | None = None) -> Policy:
        """What applies to ``variant`` (see the class docstring for the order); ``default`` is
        the variant's own default policy, if it has one."""
        if variant in self.tolerance:
            return self.tolerance[variant]
        patterns = [p for p in self.tolerance if p != "*" and fnmatch.fnmatchcase(variant, p)]
        if patterns:
            return self.tolerance[max(patterns, key=len)]
        if default is not None:
            return default
        return self.tolerance.get("*", DEFAULT_TOLERANCE)

    def latency_dims(self, latency: Latency) -> dict[str, int]:
        """The concrete dims a latency budget is measured at (undeclared ones at their minimum)."""
        return {name: latency.at.get(name, self.dims[name].first) for name in self.symbolic_dims}

    def options_for(self, variant: str) -> Mapping[str, Any]:
        """The builder options declared for ``variant`` (empty when none)."""
        return self.variant_options.get(variant, MappingProxyType({}))
