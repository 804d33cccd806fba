"""The value parsers of the settings (:mod:`.config`): text from a flag or an ini key to a
value, or a ValueError naming the setting and the bad value. Knows nothing of pytest."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

#: latency budgets: enforced, recorded, or not measured
LATENCY_MODES = ("enforce", "report", "off")
#: which variants run in a worker process of their own (see the isolate setting).
ISOLATE_MODES = ("auto", "all", "off")
#: which boundaries branch coverage measures (:mod:`.coverage`)
COVERAGE_MODES = ("inner", "inputs")


def _integer(text: str | int, what: str, minimum: int, wanted: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(f"{what} must be {wanted}, got {text!r}")
    return value


def parse_positive_int(text: str | int, what: str) -> int:
    return _integer(text, what, 1, "a positive integer")


def parse_seed(text: str | int, what: str) -> int:
    return _integer(text, what, 0, "an integer of 0 or more")


def parse_variants(text: str | list[str], what: str) -> tuple[str, ...]:
    items = text if isinstance(text, list) else str(text).replace(",", " ").split()
    names = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    if not names:
        raise ValueError(f"{what} must name at least one variant, e.g. ort-cpu")
    return names


def parse_shard(text: str, what: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N), 1 <= K <= N; a ValueError naming the bad text."""
    head, slash, tail = str(text).strip().partition("/")
    try:
        index, count = int(head), int(tail)
    except ValueError:
        index = count = 0
    if not slash or not 1 <= index <= count:
        raise ValueError(f"{what} must be K/N with 1 <= K <= N (e.g. 2/4), got {text!r}")
    return index, count


def parse_cache_dir(text: str, what: str) -> str:
    """``auto``, ``off``, ``verify``, or a folder."""
    value = str(text).strip()
    if not value:
        raise ValueError(f"{what} must be auto, off, verify or a folder, got {text!r}")
    return value.lower() if value.lower() in ("auto", "off", "verify") else value


def _choice(modes: tuple[str, ...]) -> Callable[[str, str], str]:
    """A parser that accepts one of ``modes`` (any case)."""

    def parse(text: str, what: str) -> str:
        mode = str(text).strip().lower()
        if mode not in modes:
            raise ValueError(f"{what} must be one of {', '.join(modes)}, got {text!r}")
        return mode

    return parse


parse_latency_mode = _choice(LATENCY_MODES)
parse_isolate_mode = _choice(ISOLATE_MODES)
parse_coverage_mode = _choice(COVERAGE_MODES)


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


def argparse_type(parse: Callable[[Any, str], Any], what: str) -> Callable[[str], Any]:
    """An argparse ``type=`` from a parser: a bad value fails at parse time, naming ``what``."""

    def convert(text: str) -> Any:
        try:
            return parse(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert
