"""The strategies a search draws its examples with (Hypothesis imported when one is made, by the
search's engine): :data:`GROUP` examples per Hypothesis example,
drawn as one byte string (:func:`example_groups`), and one example drawn as integers for
shrinking a failing one (:func:`single_examples`, :func:`choices_of`); where Hypothesis keeps
its files while a search runs (:func:`hypothesis_storage`). Knows nothing of frameworks, ONNX
Runtime or pytest."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

from onnxparity.draw import Example, patterns_for
from onnxparity.draw.fills import SEED_MAX
from onnxparity.errors import InvalidSpec
from onnxparity.spec import ParitySpec

if TYPE_CHECKING:
    from hypothesis import strategies as st

#: input sets evaluated per Hypothesis example. Hypothesis's engine costs about 0.2 ms per
#: example whatever the example holds, more than a tiny model's inference, and 0.4-0.7 ms after
#: a CNN's inference has taken the caches (measured between one group's last evaluation and the
#: next one's first on issue 31's CNN: 8 ms per 51 examples at 5 per group, 3.5 ms at 10; the
#: whole check 0.96x as long at 25 as at 10, alternated over 16 repeats): each engine example
#: draws this many input sets, each with its own dims, patterns and seed (so a search tries as
#: many shapes as before), evaluated one by one, so a failing one is still one example, shrunk
#: and reproduced alone. A search of N examples runs :func:`engine_examples` engine examples.
GROUP = 25

#: bytes one engine example may draw: Hypothesis holds at most 8 KiB of choices per test case
#: and does not run one that draws past it, so a group of wide examples (a model with hundreds
#: of inputs takes a pattern byte per input) holds fewer of them, within half of that.
GROUP_BYTES = 4096
#: an example wider than this cannot be drawn at all (Hypothesis's 8 KiB, less its own bytes)
EXAMPLE_BYTES = 8000


def group_size(width: int) -> int:
    """Input sets per engine example for examples of ``width`` bytes: :data:`GROUP`, fewer where
    they would not fit in :data:`GROUP_BYTES`, and at least one."""
    return max(1, min(GROUP, GROUP_BYTES // max(1, width)))


def group_for(spec: ParitySpec, rows: Mapping[str, np.ndarray] | None = None) -> int:
    """:func:`group_size` for ``spec``'s examples; an InvalidSpec where one example is too wide
    for Hypothesis to draw at all (before: every test case overran, none ran, and the search
    passed on the explicit examples alone)."""
    width = decoder(spec, rows)[0]
    if width > EXAMPLE_BYTES:
        raise InvalidSpec(
            f"{len(spec.inputs)} inputs: one drawn example takes {width} bytes (one per input), more than "
            f"the {EXAMPLE_BYTES} Hypothesis draws for one example, so none can be drawn; give the model "
            "fewer, wider inputs (columns concatenated into one)"
        )
    return group_size(width)


def engine_examples(budget: int, size: int = GROUP) -> int:
    """Hypothesis examples for a search of ``budget`` input sets drawn ``size`` per engine
    example: Hypothesis's first example is its simplest (every byte zero), a group of one
    example drawn ``size`` times and run once; the others draw a group each, and the search
    runs no drawn example past ``budget`` until one fails."""
    return 1 + -(-(budget - 1) // size)


def examples(spec: ParitySpec, rows: Mapping[str, np.ndarray] | None = None) -> st.SearchStrategy[Example]:
    """The strategy of examples over ``spec``'s declared input space (and ``rows``, real data)."""
    return example_groups(spec, rows, size=1).map(lambda group: group[0])


#: bytes an example is drawn as: per dim a value index, per input a pattern index, then a seed
DIM_BYTES, PATTERN_BYTES, SEED_BYTES = 2, 1, 4


#: the database key a failing example is shrunk under (:meth:`Search._shrink`)
SHRINK_KEY = b"onnxparity-shrink"


def _widths(spec: ParitySpec) -> list[int]:
    """Bytes per dim: two, or four where a dim has more than 65,536 values."""
    return [DIM_BYTES if spec.dims[n].values_count <= 1 << (8 * DIM_BYTES) else 4 for n in spec.symbolic_dims]


def choices_of(spec: ParitySpec, rows: Mapping[str, np.ndarray] | None, example: Example) -> tuple[int, ...] | None:
    """``example`` as the choices :func:`single_examples` draws it from (a value index per
    dim, a pattern index per input, the seed); None where it draws no such example."""
    options = [patterns_for(i, rows) for i in spec.inputs]
    found: list[int] = []
    for name, value in example.dims:
        dim = spec.dims[name]
        if value not in dim:
            return None
        found.append((value - dim.first) // dim.multiple_of)
    for pattern, patterns in zip(example.patterns, options):
        if pattern not in patterns:
            return None
        found.append(patterns.index(pattern))
    if not 0 <= example.seed <= SEED_MAX:
        return None
    return (*found, example.seed)


def single_examples(spec: ParitySpec, rows: Mapping[str, np.ndarray] | None = None) -> st.SearchStrategy[Example]:
    """One example drawn as integers, for shrinking one failing example (:meth:`Search._shrink`):
    Hypothesis shrinks an integer in a few steps (bisection), a byte string byte by byte
    (measured on the detection corpus: 6-61 examples per failure, shrinking included, against
    35-128 shrinking the bytes)."""
    from hypothesis import strategies as st

    names = spec.symbolic_dims
    dims = [spec.dims[n] for n in names]
    options = [patterns_for(i, rows) for i in spec.inputs]
    count = len(names)

    def decode(chosen: tuple[int, ...]) -> Example:
        return Example(
            tuple((n, d.value(i)) for n, d, i in zip(names, dims, chosen)),
            tuple(o[i] for o, i in zip(options, chosen[count:])),
            chosen[-1],
        )

    return st.tuples(
        *[st.integers(0, d.values_count - 1) for d in dims],
        *[st.integers(0, len(o) - 1) for o in options],
        st.integers(0, SEED_MAX),
    ).map(decode)


def example_groups(
    spec: ParitySpec, rows: Mapping[str, np.ndarray] | None = None, size: int | None = None
) -> st.SearchStrategy[tuple[Example, ...]]:
    """``size`` examples per Hypothesis example (default :func:`group_size`), each its own dims, patterns and
    seed. Drawn as one fixed-size byte string and decoded here: Hypothesis's cost grows with
    the draws it records (measured per group of five: 15 integers 0.41 ms, one byte string
    0.17 ms, no more than a single integer). The decoding is monotonic, so Hypothesis's
    shrinking (bytes toward zero) still reaches the smallest dims, the simplest patterns and
    seed 0; values are spread evenly over each dim's range."""
    from hypothesis import strategies as st

    width, decode = decoder(spec, rows)
    size = group_size(width) if size is None else size

    def split(data: bytes) -> tuple[Example, ...]:
        return tuple(decode(data[k : k + width]) for k in range(0, len(data), width))

    return st.binary(min_size=width * size, max_size=width * size).map(split)


def decoder(spec: ParitySpec, rows: Mapping[str, np.ndarray] | None = None) -> tuple[int, Callable[[bytes], Example]]:
    """(bytes per example, the function from an example's bytes to the example): per dim a value
    index (:func:`_widths` bytes), per input a pattern index (one byte), then a four-byte seed;
    each index grows with its bytes."""
    names = spec.symbolic_dims
    counts = [spec.dims[n].values_count for n in names]
    dims = [spec.dims[n] for n in names]
    options = [patterns_for(i, rows) for i in spec.inputs]
    widths = _widths(spec)
    width = sum(widths) + PATTERN_BYTES * len(options) + SEED_BYTES

    def pick(data: bytes, at: int, length: int, count: int) -> int:
        """An index below ``count``, growing with the bytes at ``at``."""
        return (int.from_bytes(data[at : at + length], "big") * count) >> (8 * length)

    def decode(data: bytes) -> Example:
        at, chosen_dims, chosen_patterns = 0, [], []
        for name, dim, count, length in zip(names, dims, counts, widths):
            chosen_dims.append((name, dim.value(pick(data, at, length, count))))
            at += length
        for patterns in options:
            chosen_patterns.append(patterns[pick(data, at, PATTERN_BYTES, len(patterns))])
            at += PATTERN_BYTES
        seed = int.from_bytes(data[at : at + SEED_BYTES], "big") & SEED_MAX
        return Example(tuple(chosen_dims), tuple(chosen_patterns), seed)

    return width, decode


@contextlib.contextmanager
def hypothesis_storage(directory: str) -> Iterator[None]:
    """Point Hypothesis's storage (it caches constants it reads from local modules, in
    ``.hypothesis/`` of the current directory) at ``directory`` while a search runs, then give
    the user's own setting back: a run leaves nothing in the user's tree."""
    from hypothesis.configuration import set_hypothesis_home_dir, storage_directory

    try:
        previous = storage_directory(intent_to_write=False).path
    except TypeError:  # Hypothesis before intent_to_write
        previous = storage_directory().path
    set_hypothesis_home_dir(directory)
    try:
        yield
    finally:
        set_hypothesis_home_dir(previous)
