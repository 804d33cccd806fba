"""Reproducer bundles: a failing example's model, inputs, expected and actual outputs, and a
README that re-runs it without onnxparity — written atomically (a staging folder renamed into
place), kept out of version control. Arrays are stored under safe keys (``input_0``,
``output_0``, ...) that names.json maps to their ONNX names, so any name survives (``file``,
a NUL, a slash), and nothing in a bundle needs ``allow_pickle=True`` to read."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from onnxparity.graph.files import copy_model_files
from onnxparity.search.tally import Evidence
from onnxparity.spec import ParitySpec

if TYPE_CHECKING:
    from onnxparity.exporters import ModelPair
    from onnxparity.forensics.subgraph import Subgraph

README = """\
A failing parity example written by onnxparity. Re-run it without onnxparity:

    import json, numpy as np, onnxruntime as ort
    names = json.load(open("names.json", encoding="utf-8"))   # each .npz key -> its ONNX name
    feeds = {{names["inputs"][k]: v for k, v in np.load("inputs.npz").items()}}
    session = ort.InferenceSession({model}, providers=["CPUExecutionProvider"])
    actual = session.run(None, feeds)
    expected = list(np.load("expected.npz").values())   # the framework's outputs, in output order

{provenance}
example.json says which test, variant, shapes, data pattern and seed produced it. The .npz
files key arrays input_0, output_0, ...; names.json maps each key to its ONNX name (any string
ONNX allows). String arrays are stored as numpy unicode, which ONNX Runtime accepts as is.
"""

SUBGRAPH_README = """
The first node that goes wrong, cut out: subgraph.onnx holds {nodes}, with the values it
reads as graph inputs ({inputs_by}, which agree). Run it:

    feeds = {{names["subgraph_inputs"][k]: v for k, v in np.load("subgraph_inputs.npz").items()}}
    actual = ort.InferenceSession("subgraph.onnx", providers=["CPUExecutionProvider"]).run(None, feeds)
    expected = list(np.load("subgraph_expected.npz").values())   # {expected_by} {tensor!r}
"""


#: characters a bundle's folder name keeps before a digest makes it unique.
NAME_LIMIT = 80


def safe_name(text: str) -> str:
    """``text`` as one file name inside its parent: letters, digits and ``_.-`` only, never
    ``.`` or ``..``, at most about :data:`NAME_LIMIT` characters. A name that had to change
    ends in a digest of the original, so two test ids never share a bundle."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")
    if cleaned == text and 0 < len(cleaned) <= NAME_LIMIT:
        return cleaned
    digest = hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
    return f"{cleaned[:NAME_LIMIT]}-{digest}" if cleaned else digest


def write_reproducer(
    directory: str,
    name: str,
    variant: str,
    pair: ModelPair,
    spec: ParitySpec,
    failure: Evidence,
    variant_model: str | None = None,
    subgraph: Subgraph | None = None,
) -> str:
    """Write model, inputs and outputs of the failing example under ``directory``; atomically
    replace any older bundle of the same test and variant. ``variant_model`` is the file a
    converted variant (int8, fp16) ran, kept beside the exported one."""
    root = os.path.abspath(directory)
    target = os.path.join(root, safe_name(name), safe_name(variant))
    assert os.path.commonpath([root, target]) == root  # safe_name never leaves the directory
    staging = f"{target}.tmp-{os.getpid()}"
    _remove(staging)  # a leftover of this process id, from a run that was killed
    os.makedirs(staging)
    try:
        _write(staging, name, variant, pair, spec, failure, variant_model, subgraph)
        _swap(staging, target)
    except BaseException:
        _remove(staging)  # a half-written bundle never stays behind
        raise
    _ignore_in_git(directory)
    return target


def _write(
    staging: str,
    name: str,
    variant: str,
    pair: ModelPair,
    spec: ParitySpec,
    failure: Evidence,
    variant_model: str | None,
    subgraph: Subgraph | None,
) -> None:
    """The bundle's files, written into ``staging``."""
    model_path = copy_model_files(pair.exported.path, staging)
    run_name = os.path.basename(model_path)
    if variant_model and os.path.abspath(variant_model) != os.path.abspath(pair.exported.path):
        run_name = f"{safe_name(variant)}.onnx"
        shutil.copy2(variant_model, os.path.join(staging, run_name))
    if pair.exported.log:  # what the exporter printed: kept here, never in the failure message
        with open(os.path.join(staging, "export.log"), "w", encoding="utf-8", errors="replace") as f:
            f.write(pair.exported.log)
    names: dict[str, dict[str, str | None]] = {}
    names["inputs"] = _save(staging, "inputs", "input", list(failure.feeds.items()))
    outputs = list(pair.exported.output_names)
    arrays: list[Any] | dict[str, np.ndarray] | None  # the evidence's outputs, then the subgraph's
    for label, arrays in (("expected", failure.expected), ("actual", failure.actual)):
        if arrays is not None:  # output names by position only where the counts agree
            known = outputs if len(outputs) == len(arrays) else [None] * len(arrays)
            names[label] = _save(staging, label, "output", list(zip(known, arrays)))
    info = {
        "test": name,
        "variant": variant,
        "exporter": pair.exported.exporter,
        "opset": pair.exported.opset,
        "model": os.path.basename(model_path),
        "variant_model": run_name,
        "example": failure.example.to_dict(),
        "description": failure.example.describe(spec),
        "runtime_error": failure.runtime_error,
        "reference_error": failure.reference_error,
        "notes": list(pair.exported.notes),
    }
    with open(os.path.join(staging, "example.json"), "w") as f:
        json.dump(info, f, indent=2)
    exported = os.path.basename(model_path)
    provenance = (
        f"{run_name} is the exported model; the variant ran it as is."
        if run_name == exported
        else f"{run_name} is the model the variant ran; {exported} is the exported model it was built from."
    )
    # json.dumps quotes the file name as a Python string literal, whatever characters it holds
    readme = README.format(model=json.dumps(run_name), provenance=provenance)
    if subgraph is not None:
        onnx.save(subgraph.model, os.path.join(staging, "subgraph.onnx"))
        names["subgraph_inputs"] = _save(staging, "subgraph_inputs", "input", list(subgraph.inputs.items()))
        for label, arrays in (("expected", subgraph.expected), ("actual", subgraph.actual)):
            names[f"subgraph_{label}"] = _save(staging, f"subgraph_{label}", "output", list(arrays.items()))
        (tensor,) = subgraph.expected
        readme += SUBGRAPH_README.format(
            nodes=", ".join(repr(n) for n in subgraph.nodes),
            tensor=tensor,
            inputs_by=subgraph.inputs_by,
            expected_by=subgraph.expected_by,
        )
    with open(os.path.join(staging, "names.json"), "w", encoding="utf-8") as f:
        json.dump(names, f, indent=2)  # ASCII escapes: a NUL or any character survives
    with open(os.path.join(staging, "README.txt"), "w", encoding="utf-8") as f:
        f.write(readme)


def _save(staging: str, label: str, prefix: str, arrays: list[tuple[str | None, object]]) -> dict[str, str | None]:
    """``arrays`` into ``<label>.npz`` under keys ``<prefix>_0``, ``<prefix>_1``, ...: a name
    is no key (``file`` is np.savez's own parameter, a NUL or slash breaks the zip entry, two
    names can clean to one); return key -> name (None: unknown) for names.json."""
    keys = [f"{prefix}_{i}" for i in range(len(arrays))]
    stored: dict[str, Any] = {  # (Any: np.savez's **kwds would otherwise be checked against allow_pickle)
        key: _storable(array, f"{prefix} {name!r} of {label}.npz") for key, (name, array) in zip(keys, arrays)
    }
    np.savez(os.path.join(staging, f"{label}.npz"), **stored)
    return {key: name for key, (name, _) in zip(keys, arrays)}


def _storable(array: object, what: str) -> np.ndarray:
    """``array`` as np.load reads back without pickle: strings (object arrays, as ONNX Runtime
    and scikit-learn hold them) become numpy unicode, which ONNX Runtime takes as is."""
    array = np.asarray(array)
    if array.dtype != object:
        return array
    values = array.ravel().tolist()
    others = [v for v in values if not isinstance(v, str)]  # None among them too
    if others:
        other = others[0]
        raise TypeError(
            f"{what} holds a Python {type(other).__name__} ({other!r:.60}), which a reproducer "
            f"bundle cannot store without pickle; have the reference and the model return numeric "
            f"or string arrays"
        )
    # numpy unicode drops trailing NULs: refuse rather than store another string
    cut = next((v for v in values if v.endswith("\x00")), None)
    if cut is not None:
        raise ValueError(
            f"{what} holds the string {cut!r}, whose trailing NUL numpy's unicode arrays drop; a "
            f"reproducer bundle cannot store it without pickle: drop the trailing NUL from the data"
        )
    return array.astype(str)


def _swap(staging: str, target: str) -> None:
    """Rename ``staging`` to ``target``; an older bundle there is moved aside first and removed
    only after: an error puts it back, a killed process leaves it on disk as ``.old-<pid>``."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    aside = None
    if os.path.lexists(target):
        aside = f"{target}.old-{os.getpid()}"
        _remove(aside)
        os.replace(target, aside)
    try:
        os.replace(staging, target)
    except BaseException:
        if aside is not None:
            try:
                os.replace(aside, target)
            except OSError:  # another process put a newer bundle there meanwhile: keep that one
                _remove(aside)
        raise
    if aside is not None:
        _remove(aside)


def _remove(path: str) -> None:
    """Delete ``path`` whether a folder, a file or a link; nothing there is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _ignore_in_git(directory: str) -> None:
    """Keep reproducer bundles out of version control, as pytest does for its cache (never
    written through a symlink)."""
    from onnxparity.persist import ignore_in_git

    ignore_in_git(directory)
