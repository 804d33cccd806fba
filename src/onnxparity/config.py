"""The one resolved configuration of a run, built once from flags and ini keys.

Every setting exists both ways: a ``--onnx-parity-*`` flag and an ``onnx_parity_*`` ini key;
a flag given on the command line wins over the ini key, which wins over the default. The
value parsers raise ``ValueError`` naming the bad value; the plugin turns that into an
argparse or usage error. Knows nothing of pytest.
"""

from __future__ import annotations

from dataclasses import dataclass

#: (flag, ini key, argparse dest, help) for every setting; flags are importable by tests.
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

INI_ENABLE = "onnx_parity"
INI_EXAMPLES = "onnx_parity_examples"
INI_VARIANTS = "onnx_parity_variants"
INI_REPRODUCERS = "onnx_parity_reproducers"
INI_THREADS = "onnx_parity_threads"
INI_REQUIRE_GPU = "onnx_parity_require_gpu"
INI_LATENCY = "onnx_parity_latency"
INI_REPORT = "onnx_parity_report"
INI_MARKDOWN = "onnx_parity_markdown"
INI_BASELINE = "onnx_parity_baseline"
INI_MAX_ERROR_GROWTH = "onnx_parity_max_error_growth"
INI_MAX_LATENCY_REGRESSION = "onnx_parity_max_latency_regression"

DEFAULT_EXAMPLES = 25
DEFAULT_REPRODUCERS = ".onnxparity/reproducers"
DEFAULT_THREADS = 1
DEFAULT_VARIANTS = ("ort-cpu",)
#: latency budgets are recorded, not enforced, unless asked: shared runners are noisy.
DEFAULT_LATENCY = "report"
LATENCY_MODES = ("enforce", "report", "off")


@dataclass(frozen=True)
class ParityConfig:
    """Settings of one run, resolved from flags, ini keys and defaults."""

    enabled: bool = False
    examples: int = DEFAULT_EXAMPLES
    #: variants to run; ``None`` runs what each marker declares.
    variants: tuple[str, ...] | None = None
    reproducer_dir: str = DEFAULT_REPRODUCERS
    threads: int = DEFAULT_THREADS
    #: a GPU variant that cannot run fails instead of skipping
    require_gpu: bool = False
    #: "enforce" fails broken latency budgets, "report" records them, "off" skips measuring
    latency: str = DEFAULT_LATENCY
    #: where the JSON report and the Markdown summary go (None: not written)
    report_path: str | None = None
    markdown_path: str | None = None
    #: the baseline report the run is gated against; update_baseline rewrites it instead
    baseline_path: str | None = None
    update_baseline: bool = False
    max_error_growth: float = 2.0
    max_latency_regression: float = 0.2

    @property
    def default_variants(self) -> tuple[str, ...]:
        """Variants of a test that uses the fixture without declaring any."""
        return self.variants or DEFAULT_VARIANTS


def parse_positive_int(text: str | int, what: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"{what} must be a positive integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{what} must be a positive integer, got {text!r}")
    return value


def parse_variants(text: str | list, what: str) -> tuple[str, ...]:
    items = text if isinstance(text, list) else str(text).replace(",", " ").split()
    names = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    if not names:
        raise ValueError(f"{what} must name at least one variant, e.g. ort-cpu")
    return names


def parse_latency_mode(text: str, what: str) -> str:
    mode = str(text).strip().lower()
    if mode not in LATENCY_MODES:
        raise ValueError(f"{what} must be one of {', '.join(LATENCY_MODES)}, got {text!r}")
    return mode


def parse_positive_float(text: str | float, what: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"{what} must be a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{what} must be a positive number, got {text!r}")
    return value


def parse_bool(text: str | bool, what: str) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"{what} must be true or false, got {text!r}")
