"""Reproducer bundles: a failing example's model, inputs, expected and actual outputs, and a
README that re-runs it without onnxparity — written atomically (a staging folder renamed into
place), kept out of version control."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import TYPE_CHECKING

import numpy as np
import onnx

from .onnxutils import copy_model_files
from .spec import ParitySpec
from .tally import Evidence

if TYPE_CHECKING:
    from .exporters import ModelPair
    from .forensics.subgraph import Subgraph

README = """\
A failing parity example written by onnxparity. Re-run it without onnxparity:

    import numpy as np, onnxruntime as ort
    feeds = dict(np.load("inputs.npz"))
    session = ort.InferenceSession("{model}", providers=["CPUExecutionProvider"])
    actual = session.run(None, feeds)
    expected = list(np.load("expected.npz").values())   # the framework's outputs

{provenance}
example.json says which test, variant, shapes, data pattern and seed produced it.
"""

SUBGRAPH_README = """
The first node that goes wrong, cut out: subgraph.onnx holds {nodes}, with the values it
reads as graph inputs ({inputs_by}, which agree). Run it:

    feeds = dict(np.load("subgraph_inputs.npz"))
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
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    model_path = copy_model_files(pair.exported.path, staging)
    run_name = os.path.basename(model_path)
    if variant_model and os.path.abspath(variant_model) != os.path.abspath(pair.exported.path):
        run_name = f"{safe_name(variant)}.onnx"
        shutil.copy2(variant_model, os.path.join(staging, run_name))
    np.savez(os.path.join(staging, "inputs.npz"), **failure.feeds)
    names = list(pair.exported.output_names)
    for label, arrays in (("expected", failure.expected), ("actual", failure.actual)):
        if arrays is not None:
            keys = names if len(names) == len(arrays) else [f"output_{i}" for i in range(len(arrays))]
            np.savez(os.path.join(staging, f"{label}.npz"), **{safe_name(k): a for k, a in zip(keys, arrays)})
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
    readme = README.format(model=run_name, provenance=provenance)
    if subgraph is not None:
        onnx.save(subgraph.model, os.path.join(staging, "subgraph.onnx"))
        for label, arrays in (
            ("inputs", subgraph.inputs),
            ("expected", subgraph.expected),
            ("actual", subgraph.actual),
        ):
            np.savez(os.path.join(staging, f"subgraph_{label}.npz"), **arrays)
        (tensor,) = subgraph.expected
        readme += SUBGRAPH_README.format(
            nodes=", ".join(repr(n) for n in subgraph.nodes),
            tensor=tensor,
            inputs_by=subgraph.inputs_by,
            expected_by=subgraph.expected_by,
        )
    with open(os.path.join(staging, "README.txt"), "w") as f:
        f.write(readme)
    if os.path.exists(target):
        shutil.rmtree(target)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(staging, target)
    _ignore_in_git(directory)
    return target


def _ignore_in_git(directory: str) -> None:
    """Keep reproducer bundles out of version control, as pytest does for its cache."""
    marker = os.path.join(directory, ".gitignore")
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("# created by onnxparity\n*\n")
