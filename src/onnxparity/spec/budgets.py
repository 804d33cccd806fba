"""Budget declarations: :class:`Opset` (what the exported model may use) and
:class:`Latency` (how fast a variant must run); :mod:`onnxparity.budgets` checks them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from onnxparity.errors import InvalidSpec
from onnxparity.spec.inputs import freeze_mapping, is_int, is_real

#: operator domains an opset budget allows unless told otherwise.
DEFAULT_DOMAINS = ("ai.onnx", "ai.onnx.ml")


def _op_names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidSpec(f"{where}={value!r}: give a list of op types, e.g. ['Loop', 'If']")
    names = tuple(dict.fromkeys(value))
    if not all(isinstance(n, str) and n for n in names):
        raise InvalidSpec(f"{where}={value!r}: op types are non-empty strings such as 'Conv'")
    return names


STANDARD_DOMAINS = ("", "ai.onnx")


def canonical_domain(domain: str) -> str:
    """``"ai.onnx"`` for either spelling of the standard domain; any other domain unchanged."""
    return "ai.onnx" if domain in STANDARD_DOMAINS else domain


def is_standard_domain(domain: str) -> bool:
    """True for ``""`` and ``"ai.onnx"``, the standard operator domain's two spellings."""
    return domain in STANDARD_DOMAINS


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
            if value is not None and (not is_int(value) or value < 1):
                raise InvalidSpec(f"Opset({fname}={value!r}): give an ONNX opset number such as 17")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidSpec(f"Opset(min={self.min}, max={self.max}): min is larger than max")
        matrix = self.matrix
        if isinstance(matrix, int) or not isinstance(matrix, Iterable):
            raise InvalidSpec(f"Opset(matrix={matrix!r}): give a list of opsets, e.g. [13, 17, 21]")
        matrix = tuple(dict.fromkeys(matrix))
        for value in matrix:
            if not is_int(value) or value < 1:
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
        object.__setattr__(self, "domains", tuple(dict.fromkeys(canonical_domain(d) for d in domains)))
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

    def to_dict(self) -> dict[str, Any]:
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
            isinstance(k, str) and is_int(v) and v >= 1 for k, v in self.at.items()
        ):
            raise InvalidSpec(
                f"Latency(at={self.at!r}): give concrete dims, e.g. {{'batch': 1, 'size': 224}}"
            )
        object.__setattr__(self, "at", freeze_mapping({k: int(v) for k, v in self.at.items()}))
        for fname in ("p50_ms", "p95_ms", "max_ratio", "min_time_s", "max_time_s"):
            value = getattr(self, fname)
            if value is not None and (not is_real(value) or not math.isfinite(value) or value <= 0):
                raise InvalidSpec(f"Latency({fname}={value!r}): give a positive number")
        for fname in ("threads", "min_repeats"):
            value = getattr(self, fname)
            if not is_int(value) or value < 1:
                raise InvalidSpec(f"Latency({fname}={value!r}): give a positive integer")
        if not is_int(self.warmup) or self.warmup < 0:
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "at": dict(self.at),
            **{k: getattr(self, k) for k in ("p50_ms", "p95_ms", "max_ratio", "threads")},
        }


def latencies(latency: Any) -> tuple[Latency, ...]:
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
