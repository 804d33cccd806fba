"""The one resolved configuration of a run, and the one table of the settings it is built from.

Every setting is a :class:`Setting` in :data:`SETTINGS`: its ``--onnx-parity-*`` flag, its
``onnx_parity_*`` ini key, how its text is parsed, its default and its help. The plugin
registers and resolves them in a loop over the table (a flag given on the command line wins
over the ini key, which wins over the default); ``ParityConfig``'s field defaults and the
``DEFAULT_*`` names below come from it, so each default is written once. The value parsers
raise ``ValueError`` naming the bad value; the plugin turns that into an argparse or usage
error. Knows nothing of pytest.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from onnxparity.parsers import (  # noqa: F401 (importable from here, as before)
    COVERAGE_MODES,
    ISOLATE_MODES,
    LATENCY_MODES,
    argparse_type,
    parse_bool,
    parse_cache_dir,
    parse_coverage_mode,
    parse_isolate_mode,
    parse_latency_mode,
    parse_positive_float,
    parse_positive_int,
    parse_seed,
    parse_shard,
    parse_variants,
)

#: every flag, importable by tests (the table below says what each does).
FLAG_ENABLE = "--onnx-parity"
FLAG_EXAMPLES = "--onnx-parity-examples"
FLAG_VARIANTS = "--onnx-parity-variants"
FLAG_REPRODUCERS = "--onnx-parity-reproducers"
FLAG_THREADS = "--onnx-parity-threads"
FLAG_REQUIRE_GPU = "--onnx-parity-require-gpu"
FLAG_LATENCY = "--onnx-parity-latency"
FLAG_REPORT = "--onnx-parity-report"
FLAG_MARKDOWN = "--onnx-parity-markdown"
FLAG_BASELINE = "--onnx-parity-baseline"
FLAG_UPDATE_BASELINE = "--onnx-parity-update-baseline"
FLAG_MAX_ERROR_GROWTH = "--onnx-parity-max-error-growth"
FLAG_MAX_LATENCY_REGRESSION = "--onnx-parity-max-latency-regression"
FLAG_MAX_EXAMPLE_MB = "--onnx-parity-max-example-mb"
FLAG_ITEM_TIMEOUT = "--onnx-parity-item-timeout"
FLAG_ISOLATE = "--onnx-parity-isolate"
FLAG_COVERAGE = "--onnx-parity-coverage"
FLAG_SEED = "--onnx-parity-seed"
FLAG_CACHE = "--onnx-parity-cache"
FLAG_CACHE_MB = "--onnx-parity-cache-mb"
FLAG_HTML = "--onnx-parity-html"
FLAG_SHARD = "--onnx-parity-shard"
FLAG_DURATIONS = "--onnx-parity-durations"
FLAG_EXCLUDE_VARIANTS = "--onnx-parity-exclude-variants"

#: variants of a test that declares none, unless --onnx-parity-variants names them.
DEFAULT_VARIANTS = ("ort-cpu",)
#: how a message names a setting: as a library argument or as a pytest flag.
WORDINGS = ("library", "pytest")


#: the ini value types a setting uses (pytest's ``addini`` types)
IniKind = Literal["string", "bool", "args"]


@dataclass(frozen=True)
class Setting:
    """One setting: its ParityConfig field, flag, ini key, parser, default and help."""

    name: str  # the ParityConfig field
    flag: str
    ini: str | None  # None: flag only
    default: Any
    #: argparse help (write "%%" for "%"); "{default}" becomes the default, "{builtin}" the
    #: built-in variants
    help: str
    parse: Callable[[Any, str], Any] | None = None  # None: the text as given
    metavar: str | None = None
    switch: bool = False  # a store_true flag and a bool ini key
    ini_type: IniKind | None = None  # pytest's addini type; None: "bool" for a switch, else "string"
    #: a path, joined to "rootdir" or "invocation_dir" (after ``~`` expansion); None: not a path
    relative_to: str | None = None

    def __post_init__(self) -> None:
        if self.relative_to not in (None, "rootdir", "invocation_dir"):
            raise ValueError(
                f"Setting({self.name!r}): relative_to={self.relative_to!r}; "
                "use 'rootdir', 'invocation_dir' or None"
            )
        if self.switch and (self.parse not in (None, parse_bool) or self.metavar):
            raise ValueError(f"Setting({self.name!r}): a switch takes no parser but parse_bool, no metavar")

    @property
    def dest(self) -> str:
        """The flag's argparse dest: ``--onnx-parity-examples`` -> ``onnx_parity_examples``."""
        return self.flag.lstrip("-").replace("-", "_")

    def describe(self, builtin: Sequence[str] = ()) -> str:
        """The help text, with the default and the ``builtin`` variants written in."""
        text = self.help.replace("{default}", _shown(self.default))
        return text.replace("{builtin}", ", ".join(builtin))

    @property
    def ini_kind(self) -> IniKind:
        return self.ini_type or ("bool" if self.switch else "string")

    @property
    def ini_default(self) -> Any:
        """What ``getini`` returns when the ini file does not set the key (the default)."""
        if self.ini_kind == "bool":
            return bool(self.default)
        if self.ini_kind == "args":
            return list(self.default or ())
        return "" if self.default is None else str(self.default)


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


#: Every setting, in ``--help`` order. ``update_baseline`` is flag only on purpose: set in an
#: ini file it would rewrite the baseline on every run, so nothing would ever be gated.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "enabled",
        FLAG_ENABLE,
        "onnx_parity",
        False,
        "run the ONNX parity items (tests using the onnx_parity fixture); without it they are skipped",
        parse_bool,
        switch=True,
    ),
    Setting(
        "examples",
        FLAG_EXAMPLES,
        "onnx_parity_examples",
        25,
        "Hypothesis examples drawn per model and variant (default {default}; a marker's examples= wins)",
        parse_positive_int,
        "N",
    ),
    Setting(
        "seed",
        FLAG_SEED,
        "onnx_parity_seed",
        0,
        "mixed into every item's search seed (derived from its test id, so runs repeat): another value "
        "draws other examples, e.g. to confirm a tolerance on inputs it was not set from (default {default})",
        parse_seed,
        "N",
    ),
    Setting(
        "variants",
        FLAG_VARIANTS,
        "onnx_parity_variants",
        None,  # None: each test runs the variants its marker declares
        "run only these variants (others are deselected); also the variants of a test that "
        f"declares none (default {_shown(DEFAULT_VARIANTS)}; built in: {{builtin}})",
        parse_variants,
        "V1,V2",
        ini_type="args",
    ),
    Setting(
        "exclude_variants",
        FLAG_EXCLUDE_VARIANTS,
        "onnx_parity_exclude_variants",
        None,
        "deselect these variants' items (CPU jobs of a suite whose ort-gpu items run on a GPU job); the "
        "report records them as planned, so a merge without the job that runs them is incomplete",
        parse_variants,
        "V1,V2",
        ini_type="args",
    ),
    Setting(
        "shard",
        FLAG_SHARD,
        None,
        None,
        "run shard K of N of the parity items: grouped by the model they check (every variant and opset of "
        "one test's model on one shard, one export), balanced by " + FLAG_DURATIONS + " or by item count; "
        "other tests are left to your selection",
        parse_shard,
        "K/N",
    ),
    Setting(
        "durations_path",
        FLAG_DURATIONS,
        "onnx_parity_durations",
        None,
        "an earlier run's JSON report whose item durations balance the shards",
        metavar="REPORT",
        relative_to="invocation_dir",
    ),
    Setting(
        "reproducer_dir",
        FLAG_REPRODUCERS,
        "onnx_parity_reproducers",
        ".onnxparity/reproducers",
        "where failing examples are saved, relative to the rootdir (default {default})",
        metavar="DIR",
        relative_to="rootdir",
    ),
    Setting(
        "threads",
        FLAG_THREADS,
        "onnx_parity_threads",
        1,
        "ONNX Runtime intra-op threads per session (default {default})",
        parse_positive_int,
        "N",
    ),
    Setting(
        "require_gpu",
        FLAG_REQUIRE_GPU,
        "onnx_parity_require_gpu",
        False,
        "fail (instead of skip) GPU variants such as ort-gpu when no usable GPU is found",
        parse_bool,
        switch=True,
    ),
    Setting(
        "latency",
        FLAG_LATENCY,
        "onnx_parity_latency",
        # latency budgets are recorded, not enforced, unless asked: shared runners are noisy.
        "report",
        "latency budgets: enforce (a broken budget fails its item), report (numbers recorded, "
        "never fails) or off (not measured, items skipped); default {default}",
        parse_latency_mode,
        "MODE",
    ),
    Setting(
        "report_path",
        FLAG_REPORT,
        "onnx_parity_report",
        None,
        "write the run's JSON report (schema: onnxparity/report/schema.json) to PATH, atomically",
        metavar="PATH",
        relative_to="invocation_dir",
    ),
    Setting(
        "html_path",
        FLAG_HTML,
        "onnx_parity_html",
        None,
        "write the run's HTML report to PATH: one self-contained page (tests x variants by headroom, each "
        "item's error distribution, diagnosis, budgets, the baseline's changes, advised tolerances)",
        metavar="PATH",
        relative_to="invocation_dir",
    ),
    Setting(
        "markdown_path",
        FLAG_MARKDOWN,
        "onnx_parity_markdown",
        None,
        "write the Markdown summary to PATH (it is also appended to $GITHUB_STEP_SUMMARY when set)",
        metavar="PATH",
        relative_to="invocation_dir",
    ),
    Setting(
        "baseline_path",
        FLAG_BASELINE,
        "onnx_parity_baseline",
        None,
        "gate the run against this baseline report: the session fails on a regression",
        metavar="PATH",
        relative_to="invocation_dir",
    ),
    Setting(
        "update_baseline",
        FLAG_UPDATE_BASELINE,
        None,
        False,
        f"write this run's report as the new baseline (at {FLAG_BASELINE}) instead of gating",
        switch=True,
    ),
    Setting(
        "max_error_growth",
        FLAG_MAX_ERROR_GROWTH,
        "onnx_parity_max_error_growth",
        2.0,
        "the gate fails when an output's max abs error grows more than X times (default {default})",
        parse_positive_float,
        "X",
    ),
    Setting(
        "max_latency_regression",
        FLAG_MAX_LATENCY_REGRESSION,
        "onnx_parity_max_latency_regression",
        0.2,
        "the gate fails when an enforced latency grows by more than the fraction F of the "
        "baseline's (default {default})",
        parse_positive_float,
        "F",
    ),
    Setting(
        "max_example_mb",
        FLAG_MAX_EXAMPLE_MB,
        "onnx_parity_max_example_mb",
        1024,
        "memory budget of one example's inputs in MiB, and of an op output whose size an input's values "
        "set (Tile's repeats, Pad's pads): a declaration whose largest example (every dim at its maximum) "
        "needs more is refused with the input that makes it so (default {default})",
        parse_positive_int,
        "MB",
    ),
    Setting(
        "item_timeout_s",
        FLAG_ITEM_TIMEOUT,
        "onnx_parity_item_timeout",
        None,
        "seconds one parity item's search may take: past it the item fails with the examples it "
        "reached (default: no limit)",
        parse_positive_float,
        "S",
    ),
    Setting(
        "cache_dir",
        FLAG_CACHE,
        "onnx_parity_cache",
        "auto",
        "the persistent cache of exports, variant conversions and passing results across runs: auto (.onnxparity/cache under the rootdir; a library "
        "ParitySession keeps none unless given a folder), off, a folder, or verify (reuse nothing: compute everything and compare with what "
        "the cache holds; a difference fails the item as a cache error); safe to delete (default {default})",
        parse_cache_dir,
        "DIR",
    ),
    Setting(
        "cache_mb",
        FLAG_CACHE_MB,
        "onnx_parity_cache_mb",
        2048,
        "size cap of the persistent cache: the least recently used entries go first (default {default})",
        parse_positive_int,
        "MB",
    ),
    Setting(
        "isolate",
        FLAG_ISOLATE,
        "onnx_parity_isolate",
        "auto",
        "which variants are built and run in a worker process of their own, so that a native crash "
        "fails only the item that hit it: auto (lossy and user-registered variants, and every "
        "variant of a prebuilt ONNX file), all, or off; variant_options={V: {'isolate': ...}} "
        "decides for one variant (default {default})",
        parse_isolate_mode,
        "MODE",
    ),
    Setting(
        "coverage",
        FLAG_COVERAGE,
        "onnx_parity_coverage",
        "inner",
        "branch coverage: inner (the boundaries of the graph's inputs, and the branching nodes inside "
        "the network, measured on each model's first searched variant by a second ONNX Runtime run per "
        "example) or inputs (the inputs' boundaries only) (default {default})",
        parse_coverage_mode,
        "MODE",
    ),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}

DEFAULT_EXAMPLES: int = DEFAULTS["examples"]
DEFAULT_REPRODUCERS: str = DEFAULTS["reproducer_dir"]
DEFAULT_THREADS: int = DEFAULTS["threads"]
DEFAULT_LATENCY: str = DEFAULTS["latency"]
DEFAULT_MAX_ERROR_GROWTH: float = DEFAULTS["max_error_growth"]
DEFAULT_MAX_LATENCY_REGRESSION: float = DEFAULTS["max_latency_regression"]


def setting(name: str) -> Setting:
    """The setting of ParityConfig field ``name``; a ValueError lists the known ones."""
    try:
        return SETTINGS_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown setting {name!r}; known: {', '.join(SETTINGS_BY_NAME)}") from None


@dataclass(frozen=True)
class ParityConfig:
    """Settings of one run, resolved from flags, ini keys and defaults (see :data:`SETTINGS`)."""

    enabled: bool = DEFAULTS["enabled"]
    examples: int = DEFAULTS["examples"]
    #: mixed into every item's search seed (0: the seed is the test id's alone)
    seed: int = DEFAULTS["seed"]
    #: variants to run; ``None`` runs what each marker declares.
    variants: tuple[str, ...] | None = DEFAULTS["variants"]
    #: variants whose items are deselected (recorded as planned); this process's shard (K, N);
    #: the report whose durations balance the shards
    exclude_variants: tuple[str, ...] | None = DEFAULTS["exclude_variants"]
    shard: tuple[int, int] | None = DEFAULTS["shard"]
    durations_path: str | None = DEFAULTS["durations_path"]
    reproducer_dir: str = DEFAULTS["reproducer_dir"]
    threads: int = DEFAULTS["threads"]
    #: a GPU variant that cannot run fails instead of skipping
    require_gpu: bool = DEFAULTS["require_gpu"]
    #: "enforce" fails broken latency budgets, "report" records them, "off" skips measuring
    latency: str = DEFAULTS["latency"]
    #: where the JSON report and the Markdown summary go (None: not written)
    report_path: str | None = DEFAULTS["report_path"]
    html_path: str | None = DEFAULTS["html_path"]
    markdown_path: str | None = DEFAULTS["markdown_path"]
    #: the baseline report the run is gated against; update_baseline rewrites it instead
    baseline_path: str | None = DEFAULTS["baseline_path"]
    update_baseline: bool = DEFAULTS["update_baseline"]
    max_error_growth: float = DEFAULTS["max_error_growth"]
    max_latency_regression: float = DEFAULTS["max_latency_regression"]
    max_example_mb: int = DEFAULTS["max_example_mb"]
    item_timeout_s: float | None = DEFAULTS["item_timeout_s"]
    #: the persistent cache's folder: "auto" (the plugin's: .onnxparity/cache under the rootdir;
    #: none for a library session), "off", or a folder; and its size cap
    cache_dir: str = DEFAULTS["cache_dir"]
    cache_mb: int = DEFAULTS["cache_mb"]
    #: "auto", "all" or "off": which variants run in a worker process (:mod:`.variants.worker`)
    isolate: str = DEFAULTS["isolate"]
    #: "inner" or "inputs": which branches coverage measures (:mod:`.coverage`)
    coverage: str = DEFAULTS["coverage"]
    #: how messages name settings (:meth:`spell`): "library" arguments or "pytest" flags
    wording: str = "library"
    #: reuse nothing from the cache: compute everything and compare with what it holds (not a
    #: setting of its own: the plugin sets it for ``--onnx-parity-cache=verify``; a cache error
    #: fails the item)
    cache_verify: bool = False

    def __post_init__(self) -> None:
        if self.isolate not in ISOLATE_MODES:
            raise ValueError(f"ParityConfig(isolate={self.isolate!r}): use one of {', '.join(ISOLATE_MODES)}")
        if self.coverage not in COVERAGE_MODES:
            raise ValueError(
                f"ParityConfig(coverage={self.coverage!r}): use one of {', '.join(COVERAGE_MODES)}"
            )
        if self.wording not in WORDINGS:
            raise ValueError(f"ParityConfig(wording={self.wording!r}): use one of {', '.join(WORDINGS)}")

    @property
    def default_variants(self) -> tuple[str, ...]:
        """Variants of a test that uses the fixture without declaring any."""
        return self.variants or DEFAULT_VARIANTS

    def spell(self, name: str, value: Any = None) -> str:
        """How a message names setting ``name`` (set to ``value``) to the user.

        "pytest": ``--onnx-parity-latency=off``; a switch is its bare flag (``without FLAG``
        for False). "library": ``latency='off'``; a switch without a value is ``name=True``;
        other settings without a value are their bare name. Unknown names raise ValueError.
        """
        known = setting(name)
        if self.wording == "pytest":
            if known.switch:
                return known.flag if value is None or value else f"without {known.flag}"
            return known.flag if value is None else f"{known.flag}={shlex.quote(_shown(value))}"
        if value is None:
            return f"{name}=True" if known.switch else name
        return f"{name}={value!r}"
