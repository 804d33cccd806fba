"""Reproducer bundles keep every input and output whatever its name (issue 25, item 4): arrays
under safe keys with names.json naming them, strings without pickle, a README whose replay
runs as written, and no half-written staging folder left when writing fails."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxparity as op
from onnxparity.diagnosis.reproducer import safe_name

#: "_y" cleans to "y" plus a digest of "_y": an output literally named that is its twin
TWIN = safe_name("_y")
#: names np.savez, a zip entry or a file name would trip on
HOSTILE_INPUTS = ("file", "allow_pickle", "a\x00b", "a/b \"q'")
WORDS = "ünï"  # a string input, a non-ASCII name
LABELS = "ünï→"
TRANSLATION = {"cat": "chat", "dog": "chien"}
NPZ = ("inputs", "expected", "actual", "subgraph_inputs", "subgraph_expected", "subgraph_actual")


def _hostile_model() -> onnx.ModelProto:
    """Float and string inputs under hostile names; outputs "_y" and its safe_name twin."""
    a, b, c, d = HOSTILE_INPUTS
    floats = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 3]) for n in HOSTILE_INPUTS]
    graph = helper.make_graph(
        [
            helper.make_node("Add", [a, b], ["_y"]),
            helper.make_node("Mul", [c, d], [TWIN]),
            helper.make_node(
                "LabelEncoder",
                [WORDS],
                [LABELS],
                domain="ai.onnx.ml",
                keys_strings=list(TRANSLATION),
                values_strings=list(TRANSLATION.values()),
                default_string="?",
            ),
        ],
        "g",
        [*floats, helper.make_tensor_value_info(WORDS, TensorProto.STRING, ["n"])],
        [
            helper.make_tensor_value_info("_y", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info(TWIN, TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info(LABELS, TensorProto.STRING, ["n"]),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 4)]
    )
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def _translate(words, wrong: str = "") -> np.ndarray:
    return np.array(
        [(wrong if w == "dog" and wrong else TRANSLATION.get(w, "?")) for w in words], dtype=object
    )


def _off_by_one(a, b, c, d, words):
    """The model's function, except its second output is one too high: the check must fail."""
    return [a + b, c * d + 1, _translate(words)]


def _replay(bundle: str) -> list[dict]:
    """Run README.txt's indented code blocks in order, as a user would, in a fresh interpreter
    with the bundle as working directory; after each, what its ``actual``/``expected`` hold."""
    lines = open(os.path.join(bundle, "README.txt"), encoding="utf-8").read().splitlines()
    blocks, current = [], []
    for line in [*lines, ""]:
        if line.startswith("    "):
            current.append(line)
        elif current:
            blocks.append(textwrap.dedent("\n".join(current)))
            current = []
    assert blocks, "README.txt holds no code to run"
    report = (
        "_out.append({'feeds': list(feeds), 'actual': [np.asarray(a).tolist() for a in actual], "
        "'expected': [np.asarray(e).tolist() for e in expected]})"
    )
    script = "_out = []\n" + "".join(f"{block}\n{report}\n" for block in blocks)
    script += "import json as _json; print(_json.dumps(_out))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=bundle, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _stored(bundle: str, label: str) -> dict[str, np.ndarray]:
    """``<label>.npz`` by ONNX name, read without pickle as the README reads it."""
    names = json.load(open(os.path.join(bundle, "names.json"), encoding="utf-8"))[label]
    with np.load(os.path.join(bundle, f"{label}.npz"), allow_pickle=False) as arrays:
        assert list(arrays) == list(names)  # the names table covers each array, in order
        return {names[k]: arrays[k] for k in arrays}


def _equal(replayed: list, stored: dict[str, np.ndarray]) -> None:
    assert len(replayed) == len(stored)
    for got, want in zip(replayed, stored.values()):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_a_bundle_with_hostile_names_replays_as_its_readme_says(tmp_path):
    """Before: np.savez(**feeds) raised TypeError on an input named 'file', and outputs saved
    under safe_name(k) could share a key, so the README fed ONNX Runtime wrong names."""
    model = _hostile_model()
    result = op.check(onnx=model, reference=_off_by_one, examples=3, reproducer_dir=tmp_path, name="hostile")
    failed = result["ort-cpu"]
    assert failed.status == "failed", failed.message
    bundle = failed.reproducer
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    # every array under a safe key, every name kept, nothing needing pickle
    names = json.load(open(os.path.join(bundle, "names.json"), encoding="utf-8"))
    assert set(names) == set(NPZ)
    assert all(re.fullmatch(r"(input|output)_\d+", key) for table in names.values() for key in table)
    assert list(names["inputs"].values()) == inputs
    assert list(names["expected"].values()) == list(names["actual"].values()) == outputs
    stored = {label: _stored(bundle, label) for label in NPZ}
    assert stored["inputs"][WORDS].dtype.kind == "U"  # strings without pickle
    assert stored["actual"][LABELS].dtype.kind == "U"
    # the framework's outputs are the reference's on the stored inputs, by name
    by_name = _off_by_one(*(stored["inputs"][n] for n in inputs))
    for name, want in zip(outputs, by_name):
        np.testing.assert_array_equal(
            stored["expected"][name], np.asarray(want).astype(stored["expected"][name].dtype)
        )
    # the README's replay: real names fed, the stored actual reproduced, the stored expected read
    whole, sub = _replay(bundle)
    assert whole["feeds"] == inputs
    _equal(whole["actual"], stored["actual"])
    _equal(whole["expected"], stored["expected"])
    assert not np.allclose(whole["actual"][1], whole["expected"][1])  # the failure, reproduced
    # the subgraph replay: the diverging Mul on its own inputs, by their real names
    assert sub["feeds"] == list(HOSTILE_INPUTS[2:]) and list(stored["subgraph_expected"]) == [TWIN]
    _equal(sub["actual"], stored["subgraph_actual"])
    _equal(sub["expected"], stored["subgraph_expected"])
    np.testing.assert_array_equal(stored["subgraph_actual"][TWIN], stored["actual"][TWIN])
    np.testing.assert_array_equal(stored["subgraph_expected"][TWIN], stored["expected"][TWIN])


def test_string_inputs_and_outputs_replay_as_numpy_unicode(tmp_path):
    """skl2onnx-style string tensors: stored as numpy unicode (np.load needs no pickle), which
    ONNX Runtime takes as feeds; its object-array outputs equal the stored ones."""
    graph = helper.make_graph(
        [
            helper.make_node(
                "LabelEncoder",
                ["word"],
                ["label"],
                domain="ai.onnx.ml",
                keys_strings=list(TRANSLATION),
                values_strings=list(TRANSLATION.values()),
                default_string="?",
            )
        ],
        "g",
        [helper.make_tensor_value_info("word", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("label", TensorProto.STRING, ["n"])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 4)]
    )
    model.ir_version = 10
    result = op.check(
        onnx=model,
        reference=lambda w: [_translate(w, "Hund")],
        examples=20,
        reproducer_dir=tmp_path,
        name="words",
    )
    failed = result["ort-cpu"]
    assert failed.status == "failed", failed.message
    stored = {label: _stored(failed.reproducer, label) for label in ("inputs", "expected", "actual")}
    assert "dog" in stored["inputs"]["word"].tolist()  # the failing word, kept as itself
    assert "Hund" in stored["expected"]["label"].tolist() and "chien" in stored["actual"]["label"].tolist()
    (whole,) = _replay(failed.reproducer)
    _equal(whole["actual"], stored["actual"])
    _equal(whole["expected"], stored["expected"])


def _square() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_a_write_that_fails_midway_leaves_no_staging_folder_and_the_old_bundle_intact(tmp_path):
    """A string ending in NUL has no pickle-free form (numpy unicode drops it): the write stops
    after model and inputs are staged, the staging folder goes, the older bundle stays."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["word"], ["same"])],
        "g",
        [helper.make_tensor_value_info("word", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    check = dict(onnx=model, examples=3, reproducer_dir=tmp_path, name="strings")
    first = op.check(reference=lambda w: [np.array(["x"] * len(w), dtype=object)], **check)["ort-cpu"]
    assert first.status == "failed", first.message
    bundle = first.reproducer
    before = {p: open(os.path.join(bundle, p), "rb").read() for p in os.listdir(bundle)}
    with pytest.raises(ValueError, match=r"output 'same' of expected\.npz holds the string 'x\\x00'"):
        op.check(reference=lambda w: [np.array(["x\x00"] * len(w), dtype=object)], **check)
    assert _leftovers(tmp_path / "strings") == []
    assert {p: open(os.path.join(bundle, p), "rb").read() for p in os.listdir(bundle)} == before


def test_the_readme_opens_a_model_file_of_any_name(tmp_path):
    """A supplied file keeps its name in the bundle; the README quotes it as a Python string."""
    path = tmp_path / 'my "odd" módel.onnx'
    onnx.save(_square(), path)
    failed = op.check(
        onnx=str(path), reference=lambda x: [x * x + 1], examples=2, reproducer_dir=tmp_path / "out"
    )["ort-cpu"]
    assert path.name in os.listdir(failed.reproducer)
    (whole, *_) = _replay(failed.reproducer)
    _equal(whole["actual"], _stored(failed.reproducer, "actual"))


def test_a_newer_bundle_replaces_an_older_one_or_whatever_stands_in_its_place(tmp_path):
    check = dict(onnx=_square(), examples=2, reproducer_dir=tmp_path, name="square")
    (tmp_path / "square").mkdir()
    (tmp_path / "square" / "ort-cpu").write_text("a stray file where the bundle goes")
    first = op.check(reference=lambda x: [x * x + 1], **check)["ort-cpu"]
    assert os.path.isdir(first.reproducer)
    second = op.check(reference=lambda x: [x * x + 2], **check)["ort-cpu"]
    assert second.reproducer == first.reproducer
    expected = _stored(second.reproducer, "expected")["y"]
    inputs = _stored(second.reproducer, "inputs")["x"]
    np.testing.assert_array_equal(expected, inputs * inputs + 2)  # the newer bundle's values
    assert _leftovers(tmp_path / "square") == []


def test_a_bundle_that_cannot_be_written_raises_and_leaves_nothing(tmp_path):
    (tmp_path / "blocked").write_text("a file where the test's folder would go")
    with pytest.raises(OSError, match="blocked"):
        op.check(
            onnx=_square(), reference=lambda x: [x + 1], examples=2, reproducer_dir=tmp_path, name="blocked"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]
