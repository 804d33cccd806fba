"""pytest plugin: options, the ``onnx_parity`` marker, the ``onnx_parity`` fixture.

Thin by design: it resolves one :class:`ParityConfig`, turns a marker's ``variants`` into one
item per variant (``test_x[ort-cpu]``), and hands each item's check to the runner. Loading it
imports no framework and no ONNX Runtime.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from . import ALL_VARIANTS
from . import config as cfg
from .config import ParityConfig
from .errors import FrameworkNotInstalled, InvalidSpec, OnnxParityError
from .spec import Item, ParitySpec, plan_items

CONFIG_KEY = pytest.StashKey[ParityConfig]()
SESSION_KEY = pytest.StashKey[Any]()  # the run's ParitySession, created on first use

#: marker arguments, with what each declares.
MARKER_ARGS = (
    "inputs",
    "dims",
    "variants",
    "tolerance",
    "opset",
    "examples",
    "data",
    "variant_options",
    "calibration",
    "latency",
)

MARKER_DOC = (
    "onnx_parity(inputs=[op.Input(...)], dims={name: op.Dim(min, max)}, variants=['ort-cpu'], "
    "tolerance=op.Tolerance(atol, rtol) or {variant: Tolerance or Agreement}, opset=None, examples=None, "
    "data=None, variant_options={variant: {...}}, calibration=[feeds], opset=op.Opset(...), "
    "latency=op.Latency(...) or a list): declare an ONNX parity check run by the onnx_parity fixture; "
    "one test item per variant (per variant and opset for Opset(matrix=...)), plus [opset] and "
    "[latency-<variant>] items for the budgets. "
    "Runs only under --onnx-parity."
)

SKIP_REASON = (
    "ONNX parity checks are off: run pytest with --onnx-parity (or set onnx_parity = true in the ini file)"
)


def _argtype(parse: Callable[[str, str], Any], what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("onnx-parity", "ONNX parity checks (onnxparity)")
    group.addoption(
        cfg.FLAG_ENABLE,
        action="store_true",
        default=None,
        dest="onnx_parity",
        help="run the ONNX parity items (tests using the onnx_parity fixture); without it they are skipped",
    )
    group.addoption(
        cfg.FLAG_EXAMPLES,
        type=_argtype(cfg.parse_positive_int, cfg.FLAG_EXAMPLES),
        default=None,
        dest="onnx_parity_examples",
        metavar="N",
        help=f"Hypothesis examples drawn per model and variant (default {cfg.DEFAULT_EXAMPLES}; "
        "a marker's examples= wins)",
    )
    group.addoption(
        cfg.FLAG_VARIANTS,
        type=_argtype(cfg.parse_variants, cfg.FLAG_VARIANTS),
        default=None,
        dest="onnx_parity_variants",
        metavar="V1,V2",
        help="run only these variants (others are deselected); also the variants of a test that "
        f"declares none (default {','.join(cfg.DEFAULT_VARIANTS)}; built in: {', '.join(ALL_VARIANTS)})",
    )
    group.addoption(
        cfg.FLAG_REPRODUCERS,
        default=None,
        dest="onnx_parity_reproducers",
        metavar="DIR",
        help=f"where failing examples are saved, relative to the rootdir (default {cfg.DEFAULT_REPRODUCERS})",
    )
    group.addoption(
        cfg.FLAG_THREADS,
        type=_argtype(cfg.parse_positive_int, cfg.FLAG_THREADS),
        default=None,
        dest="onnx_parity_threads",
        metavar="N",
        help=f"ONNX Runtime intra-op threads per session (default {cfg.DEFAULT_THREADS})",
    )
    group.addoption(
        cfg.FLAG_REQUIRE_GPU,
        action="store_true",
        default=None,
        dest="onnx_parity_require_gpu",
        help="fail (instead of skip) GPU variants such as ort-gpu when no usable GPU is found",
    )
    group.addoption(
        cfg.FLAG_LATENCY,
        type=_argtype(cfg.parse_latency_mode, cfg.FLAG_LATENCY),
        default=None,
        dest="onnx_parity_latency",
        metavar="MODE",
        help="latency budgets: enforce (a broken budget fails its item), report (numbers recorded, "
        "never fails; default) or off (not measured, items skipped)",
    )
    parser.addini(
        cfg.INI_ENABLE, "run the ONNX parity items, as --onnx-parity does", type="bool", default=False
    )
    parser.addini(cfg.INI_EXAMPLES, f"as {cfg.FLAG_EXAMPLES}", default=str(cfg.DEFAULT_EXAMPLES))
    parser.addini(cfg.INI_VARIANTS, f"as {cfg.FLAG_VARIANTS}", type="args", default=[])
    parser.addini(cfg.INI_REPRODUCERS, f"as {cfg.FLAG_REPRODUCERS}", default=cfg.DEFAULT_REPRODUCERS)
    parser.addini(cfg.INI_THREADS, f"as {cfg.FLAG_THREADS}", default=str(cfg.DEFAULT_THREADS))
    parser.addini(cfg.INI_REQUIRE_GPU, f"as {cfg.FLAG_REQUIRE_GPU}", type="bool", default=False)
    parser.addini(cfg.INI_LATENCY, f"as {cfg.FLAG_LATENCY}", default=cfg.DEFAULT_LATENCY)


def resolve_config(config: pytest.Config) -> ParityConfig:
    """Flags over ini keys over defaults; a bad ini value is a usage error naming the key."""

    def pick(dest: str, ini: str, parse: Callable[[Any, str], Any] | None):
        value = config.getoption(dest)
        if value is not None:
            return value
        raw = config.getini(ini)
        if parse is None:
            return raw
        try:
            return parse(raw, f"ini key {ini}") if raw not in ("", []) else None
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None

    reproducers = pick("onnx_parity_reproducers", cfg.INI_REPRODUCERS, None) or cfg.DEFAULT_REPRODUCERS
    return ParityConfig(
        enabled=bool(pick("onnx_parity", cfg.INI_ENABLE, cfg.parse_bool)),
        examples=pick("onnx_parity_examples", cfg.INI_EXAMPLES, cfg.parse_positive_int)
        or cfg.DEFAULT_EXAMPLES,
        variants=pick("onnx_parity_variants", cfg.INI_VARIANTS, cfg.parse_variants),
        reproducer_dir=os.path.join(str(config.rootpath), reproducers),
        threads=pick("onnx_parity_threads", cfg.INI_THREADS, cfg.parse_positive_int) or cfg.DEFAULT_THREADS,
        require_gpu=bool(pick("onnx_parity_require_gpu", cfg.INI_REQUIRE_GPU, cfg.parse_bool)),
        latency=pick("onnx_parity_latency", cfg.INI_LATENCY, cfg.parse_latency_mode) or cfg.DEFAULT_LATENCY,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_DOC)
    config.stash[CONFIG_KEY] = resolve_config(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def _marker_items(metafunc: pytest.Metafunc, parity: ParityConfig) -> list[Item]:
    """The items a marker declares: parity per variant (per opset of a matrix), budgets."""
    marker = metafunc.definition.get_closest_marker("onnx_parity")
    kwargs = marker.kwargs if marker else {}
    declared = kwargs.get("variants")
    if declared is None:
        variants: tuple = parity.default_variants
    else:
        variants = (declared,) if isinstance(declared, str) else tuple(declared)
    try:
        return plan_items(variants, kwargs.get("opset"), kwargs.get("latency"))
    except InvalidSpec:
        # A bad budget is reported by each item when it runs, with the spec's own message.
        return plan_items(variants)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "onnx_parity" not in metafunc.fixturenames:
        return
    items = _marker_items(metafunc, metafunc.config.stash[CONFIG_KEY])
    metafunc.parametrize("onnx_parity", items, indirect=True, ids=[i.id for i in items])


def _item_of(item: pytest.Item) -> Item | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("onnx_parity") if callspec is not None else None


def _selected(planned: Item | None, variants: tuple[str, ...]) -> bool:
    """--onnx-parity-variants keeps the items of those variants, and the opset budget."""
    return planned is not None and (planned.kind == "opset" or planned.variant in variants)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    parity = config.stash[CONFIG_KEY]
    parity_items = [i for i in items if "onnx_parity" in getattr(i, "fixturenames", ())]
    if parity.variants is not None:
        deselected = [i for i in parity_items if not _selected(_item_of(i), parity.variants)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            gone = set(map(id, deselected))
            items[:] = [i for i in items if id(i) not in gone]
            parity_items = [i for i in parity_items if id(i) not in gone]
    if not parity.enabled:
        skip = pytest.mark.skip(reason=SKIP_REASON)
        for item in parity_items:
            item.add_marker(skip)


def _session(config: pytest.Config):
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        from .runner import ParitySession

        parity = config.stash[CONFIG_KEY]
        session = ParitySession(
            reproducer_dir=parity.reproducer_dir,
            threads=parity.threads,
            examples=parity.examples,
            require_gpu=parity.require_gpu,
            latency_mode=parity.latency,
        )
        config.stash[SESSION_KEY] = session
    return session


def _base_id(item: pytest.Item) -> str:
    """The item's node id without its variant parameter: one name for all its variants."""
    nodeid = item.nodeid
    return nodeid[: nodeid.index("[")] if "[" in nodeid else nodeid


def _seed_rngs(seed: int) -> None:
    """Seed the RNGs a model's initialisation uses, so every variant item builds the same model."""
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.utils.set_random_seed(seed)  # also seeds tensorflow's global generator
    elif "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(seed)


class ParityFixture:
    """What a test gets from the ``onnx_parity`` fixture: ``check(model)`` runs this item —
    parity on its variant (at its opset), the opset budget, or a latency budget."""

    def __init__(self, item: pytest.Item, planned: Item, config: pytest.Config) -> None:
        self.item = item
        self.planned = planned
        self.variant = planned.variant
        self._config = config
        marker = item.get_closest_marker("onnx_parity")
        self._declared = dict(marker.kwargs) if marker else {}
        self._marker_args = tuple(marker.args) if marker else ()
        self.result = None

    def check(
        self, model: Any = None, *, onnx: Any = None, reference: Callable | None = None, **overrides: Any
    ):
        """Check ``model`` (or ``onnx`` against it or ``reference``) for this item.

        Keyword arguments override the marker's (inputs, dims, tolerance, opset, examples, data,
        variant_options, calibration, latency). Fails the test with a diagnosis when parity or
        the budget does not hold; returns the VariantResult (or BudgetResult).
        """
        __tracebackhide__ = True
        skip = failure = None
        try:
            spec, data = self._spec(overrides, model, onnx)
            checked = _session(self._config).check(
                model,
                spec=spec,
                onnx=onnx,
                reference=reference,
                name=_base_id(self.item),
                data=data,
                items=[self._bound(spec)],
            )
            result = {**checked.variants, **checked.budgets}[self.planned.id]
        except FrameworkNotInstalled as exc:
            skip = str(exc)
        except OnnxParityError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        # Outside the except blocks: no "during handling of the above exception" chain.
        if skip is not None:
            pytest.skip(skip)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
        self.result = result
        if result.status == "skipped":
            pytest.skip(result.message)
        if result.status != "passed":
            pytest.fail(result.message, pytrace=False)
        if self.planned.kind == "latency" and (
            result.measured.get("broken") or not result.measured.get("reliable", True)
        ):
            warnings.warn(LatencyReport(result.message), stacklevel=2)
        return result

    def _bound(self, spec: ParitySpec) -> Item:
        """This item, with the budget as the spec (after overrides) declares it."""
        planned = self.planned
        if planned.kind == "latency":
            same = [lat for lat in spec.latency if lat.variant == planned.variant]
            if not same:
                raise InvalidSpec(
                    f"item {planned.id}: no op.Latency(variant={planned.variant!r}) is declared"
                )
            index = next((i for i, lat in enumerate(same) if lat == planned.latency), 0)
            return replace(planned, latency=same[index])
        if planned.kind == "opset" and spec.opset_budget is None:
            raise InvalidSpec("item opset: declare opset=op.Opset(...) on the marker")
        return planned

    def _spec(self, overrides: dict, model: Any, onnx: Any) -> tuple[ParitySpec, Any]:
        from .infer import build_spec

        if self._marker_args:
            raise InvalidSpec("the onnx_parity marker takes keyword arguments only (inputs=..., dims=...)")
        args = {**self._declared, **overrides}
        unknown = sorted(set(args) - set(MARKER_ARGS))
        if unknown:
            raise InvalidSpec(f"unknown onnx_parity argument {unknown[0]!r}; known: {', '.join(MARKER_ARGS)}")
        args.setdefault("variants", (self.variant,) if self.variant else ("ort-cpu",))
        args["latency"] = args.get("latency") or ()
        data = args.pop("data", None)
        return build_spec(model, onnx=onnx, data=data, **args), data


class LatencyReport(UserWarning):
    """A latency budget was broken under --onnx-parity-latency=report, or its verdict is unreliable."""


@pytest.fixture
def onnx_parity(request: pytest.FixtureRequest) -> ParityFixture:
    """Checks a model's ONNX export for this item: ``onnx_parity.check(model)``."""
    config = request.config
    parity = config.stash[CONFIG_KEY]
    planned = getattr(request, "param", None) or plan_items(parity.default_variants[:1])[0]
    base = _base_id(request.node)
    _seed_rngs(int.from_bytes(hashlib.blake2b(base.encode(), digest_size=4).digest(), "little"))
    return ParityFixture(request.node, planned, config)
