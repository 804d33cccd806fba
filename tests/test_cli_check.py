"""``onnxparity check MODEL.onnx``: the prebuilt-file check from the command line, against the
ONNX reference evaluator, with the verdict table, the report, the page and the exit status."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxparity import cli


def _model(path, scale: float = 1.0) -> str:
    """y = relu(x @ W) * scale, x of shape (batch, 4)."""
    weights = numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), "w")
    factor = numpy_helper.from_array(np.asarray(scale, dtype=np.float32), "scale")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="project"),
            helper.make_node("Relu", ["h"], ["r"], name="act"),
            helper.make_node("Mul", ["r", "scale"], ["y"], name="scaled"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [weights, factor],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return str(path)


def test_a_file_that_agrees_passes_with_its_table_report_and_page(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _model(tmp_path / "model.onnx")
    report, html = tmp_path / "r.json", tmp_path / "r.html"
    code = cli.main(["check", model, "--variants", "ort-cpu,ort-cpu-noopt", "--examples", "6",
                     "--report", str(report), "--html", str(html)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "against the ONNX reference evaluator" in out.err
    assert any("ort-cpu" in line and "passed" in line for line in out.out.splitlines())
    assert any("ort-cpu-noopt" in line and "passed" in line for line in out.out.splitlines())
    document = json.loads(report.read_text())
    assert document["summary"]["passed"] == 2 and not document["interrupted"]
    assert {item["variant"] for item in document["items"]} == {"ort-cpu", "ort-cpu-noopt"}
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert cli.main(["report", "show", str(report)]) == 0  # the report reads back like a pytest run's


def test_a_variant_that_differs_exits_1_with_the_diagnosis(tmp_path, capsys, monkeypatch):
    """y = relu(x @ W) * 70000: past float16's 65504, the fp16 variant differs; the diagnosis
    (the first diverging node, ort-cpu on the same input), the reproducer and the next step
    are printed as under pytest."""
    monkeypatch.chdir(tmp_path)
    model = _model(tmp_path / "big.onnx", scale=70000.0)
    code = cli.main(["check", model, "--variants", "ort-cpu,fp16", "--examples", "6"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert any("fp16" in line and "failed" in line for line in out.splitlines())
    assert "fp16: failed" in out and "first divergence: Mul 'scaled'" in out
    assert "ort-cpu on the same input" in out and "\nnext: " in out
    assert f"reproducer: {tmp_path / '.onnxparity' / 'reproducers'}" in out  # under .onnxparity/


def test_bad_input_exits_2_naming_what_is_wrong(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx: no such file" in capsys.readouterr().err
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model\xff" * 10)
    assert cli.main(["check", str(garbage)]) == 2
    assert "garbage.onnx: not an ONNX model" in capsys.readouterr().err
    model = _model(tmp_path / "model.onnx")
    assert cli.main(["check", model, "--variants", "ort-cpu,no-such-variant"]) == 2
    assert "no-such-variant" in capsys.readouterr().err
    contrib = helper.make_model(
        helper.make_graph(
            [helper.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft")],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    onnx.save(contrib, str(tmp_path / "contrib.onnx"))
    assert cli.main(["check", str(tmp_path / "contrib.onnx")]) == 2
    err = capsys.readouterr().err
    assert "contrib.onnx: the ONNX reference evaluator cannot be the reference" in err
    assert "com.microsoft.FastGelu" in err


def test_an_inputs_file_declares_the_input_space(tmp_path, capsys, monkeypatch):
    """Without it a symbolic dim is drawn over 1..16; declared, over the file's range."""
    monkeypatch.chdir(tmp_path)
    model = _model(tmp_path / "model.onnx")
    declared = tmp_path / "inputs.json"
    declared.write_text(json.dumps({
        "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32", "low": -0.01, "high": 0.01}],
        "dims": {"batch": [2, 3]},
    }))
    for extra, low, high in (([], 1, 16), (["--inputs", str(declared)], 2, 3)):
        report = tmp_path / "r.json"
        code = cli.main(["check", model, "--examples", "6", "--report", str(report), *extra])
        assert code == 0, capsys.readouterr().out
        covered = json.loads(report.read_text())["items"][0]["result"]["dims_covered"]["batch"]
        assert covered == [low, high], covered


def test_a_bad_inputs_file_exits_2_naming_the_entry(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _model(tmp_path / "model.onnx")
    cases = {
        "not json {": "not JSON",
        json.dumps({"inputs": [], "dim": {}}): 'give an object with "inputs"',
        json.dumps({"inputs": [{"name": "x", "shape": ["batch", 4]}], "dim": {}}): "unknown keys ['dim']",
        json.dumps({"inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float33"}]}): "inputs[0]: ",
        json.dumps({"inputs": [{"name": "x", "shape": ["batch", 4]}], "dims": {"batch": 8}}): "dims['batch']: give [min, max]",
    }
    for text, message in cases.items():
        declared = tmp_path / "inputs.json"
        declared.write_text(text)
        assert cli.main(["check", model, "--inputs", str(declared)]) == 2, text
        err = capsys.readouterr().err
        assert f"--inputs {declared}: " in err and message in err, err


def _stored_pairs(folder, model_path, rows=(1, 3), shift=0.0):
    """test_data_set_N/input_0.pb and output_0.pb of the model's outputs (the ONNX backend
    tests' layout), the outputs moved by ``shift``."""
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model_path)
    for n, batch in enumerate(rows):
        x = np.linspace(-1, 1, batch * 4, dtype=np.float32).reshape(batch, 4)
        (y,) = evaluator.run(None, {"x": x})
        where = folder / f"test_data_set_{n}"
        where.mkdir(parents=True)
        onnx.save_tensor(numpy_helper.from_array(x, "x"), str(where / "input_0.pb"))
        onnx.save_tensor(numpy_helper.from_array(y + np.float32(shift), "y"), str(where / "output_0.pb"))


def test_stored_pairs_are_the_reference_with_data(tmp_path, capsys, monkeypatch):
    """--data: each stored pair is checked on its stored inputs against its stored outputs (one
    example each: nothing else is drawn), one row per pair and variant. No weak-check warning:
    one input says nothing of how the output moves with it (it claimed a change 'by a factor
    of inf would pass')."""
    monkeypatch.chdir(tmp_path)
    model = _model(tmp_path / "model.onnx")
    _stored_pairs(tmp_path / "data", model)
    report = tmp_path / "r.json"
    code = cli.main(["check", model, "--data", str(tmp_path / "data"), "--variants", "ort-cpu,ort-cpu-noopt",
                     "--report", str(report)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "against 2 stored pairs in" in out.err
    rows = [line for line in out.out.splitlines() if "passed" in line and "[test_data_set_" in line]
    assert len(rows) == 4
    document = json.loads(report.read_text())
    assert document["summary"]["passed"] == 4
    assert {item["result"]["examples"] for item in document["items"]} == {1}
    assert document["settings"]["examples"] == 1  # (it said 25, the default no pair ran)
    assert cli.main(["check", model, "--data", str(tmp_path / "data"), "--examples", "50"]) == 2
    assert "--data checks each stored pair once (nothing is drawn): drop --examples" in capsys.readouterr().err
    assert "(weak)" not in out.out and "could not have failed" not in out.out + out.err


def test_stored_outputs_that_differ_exit_1_naming_the_pair(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _model(tmp_path / "model.onnx")
    _stored_pairs(tmp_path / "data", model, rows=(2,), shift=0.01)
    code = cli.main(["check", model, "--data", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "ort-cpu[test_data_set_0]: failed" in out
    assert "not shrunk: the input space is one point (every input fixed, or none), so it is the one input tried" in out
    # the spec's outputs are ONNX Runtime's, not the stored ones: said of the reference, not a framework
    assert (
        "the ONNX reference evaluator (the spec) computes the outputs on this input as ONNX Runtime does: the "
        "file's graph means something other than the reference here"
    ) in out.splitlines()
    assert "reproducer: " in out
    assert cli.main(["check", model, "--data", str(tmp_path / "data"), "--atol", "0.02"]) == 0


def test_npz_pairs_and_bad_data_get_exit_2_naming_what_is_wrong(tmp_path, capsys, monkeypatch):
    from onnx.reference import ReferenceEvaluator

    monkeypatch.chdir(tmp_path)
    model = _model(tmp_path / "model.onnx")
    x = np.ones((2, 4), np.float32)
    (y,) = ReferenceEvaluator(model).run(None, {"x": x})
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "one.npz", x=x, y=y)
    assert cli.main(["check", model, "--data", str(tmp_path / "npz")]) == 0
    np.savez(tmp_path / "npz" / "two.npz", x=x)
    assert cli.main(["check", model, "--data", str(tmp_path / "npz")]) == 2
    assert "two.npz: no array named 'y'" in capsys.readouterr().err
    (tmp_path / "npz" / "two.npz").unlink()
    np.savez(tmp_path / "npz" / "three.npz", x=x.astype(np.float64), y=y)
    assert cli.main(["check", model, "--data", str(tmp_path / "npz")]) == 2
    assert "input 'x' is stored as float64, but the graph takes float32: store it as float32" in capsys.readouterr().err
    np.savez(tmp_path / "npz" / "three.npz", x=x[0], y=y[0])  # one row without its batch axis
    assert cli.main(["check", model, "--data", str(tmp_path / "npz")]) == 2
    err = capsys.readouterr().err  # before: "declare a shape of rank 2", an option --data does not have
    assert "three.npz: input 'x' is stored with shape (4,), but the graph takes (" in err
    assert "store it in that shape (one row of a batched input as a batch of one)" in err and "declare" not in err
    (tmp_path / "empty").mkdir()
    assert cli.main(["check", model, "--data", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert f"--data {tmp_path / 'empty'}: no stored pair: give test_data_set_N/" in err and err.count("--data") == 1
    assert cli.main(["check", model, "--data", str(tmp_path / "missing")]) == 2
    assert "not a folder: give the folder that holds the stored pairs" in capsys.readouterr().err
    assert cli.main(["check", model, "--data", str(tmp_path / "npz"), "--inputs", "x.json"]) == 2
    assert "--data and --inputs both say what the inputs are" in capsys.readouterr().err


def test_a_weak_pass_is_marked_in_the_table_not_warned_on_stderr(tmp_path, capsys, monkeypatch):
    """y = relu(x @ W) * 1e-6 moves less than atol: the table says 'passed (weak)' and why; no
    Python warning line (a file path and a source line of onnxparity's) reaches the terminal."""
    monkeypatch.chdir(tmp_path)
    model = _model(tmp_path / "model.onnx", scale=1e-6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main(["check", model, "--examples", "6"])
    out = capsys.readouterr()
    assert not [w for w in caught if "could not have failed" in str(w.message)]  # (printed as a warning line)
    assert code == 0
    assert "passed (weak)" in out.out and "could not have failed" in out.out
    assert "WeakCheck:" not in out.err and "cli.py" not in out.err


def test_stored_pairs_of_a_model_whose_input_meets_a_boundary_are_checked(tmp_path, capsys, monkeypatch):
    """Relu(x): the graph's boundary 0 was added to the stored input, whose values --data gives
    as choices=, and the check refused it ("choices= fixes whole values; drop boundaries=")."""
    monkeypatch.chdir(tmp_path)
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="act")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = str(tmp_path / "relu.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "one.npz", x=x, y=np.maximum(x, 0))
    code = cli.main(["check", model, "--data", str(tmp_path / "npz")])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "relu.onnx[one.npz]  ort-cpu  passed" in out.out and "1 parity items: 1 passed" in out.out


def test_a_pass_says_how_many_drawn_examples_both_sides_refused(tmp_path, capsys, monkeypatch):
    """MatMul of a (n, k) by b (k2, m), its inner dims named apart: drawn k and k2 differ in most
    examples, which both ONNX Runtime and the reference refuse. Before: the check passed on the
    few that remained (3 of 12) and said nothing of the others; now the terminal and the JSON
    report count them and name the first with the fix."""
    monkeypatch.chdir(tmp_path)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", "k"]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["k2", "m"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "m"])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), "mm.onnx")
    assert cli.main(["check", "mm.onnx", "--examples", "12", "--report", "r.json"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("rejected: "))
    assert "drawn example(s) refused by both the reference and the variant, not counted — the first: " in line
    assert "declare inputs= with the ranges the model takes" in line
    (item,) = json.loads((tmp_path / "r.json").read_text())["items"]
    found = item["result"]["rejected"]
    assert found["examples"] > 0 and found["examples"] + item["result"]["examples"] >= 12


def test_an_input_the_evaluator_cannot_run_but_onnx_runtime_runs_is_an_error_not_a_failure(tmp_path, capsys, monkeypatch):
    """A valid Loop without a condition input: ONNX Runtime runs it, the ONNX reference evaluator
    raises on every input. Before: ort-cpu 'failed' (exit 1), told to narrow the declared
    inputs; the file is right and nothing was compared, so the item is an error (exit 2)."""
    monkeypatch.chdir(tmp_path)
    value = helper.make_tensor_value_info
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["c_in"], ["c_out"]),
            helper.make_node("Add", ["acc_in", "x"], ["acc_out"]),
            helper.make_node("Identity", ["acc_out"], ["scan"]),
        ],
        "body",
        [value("i", TensorProto.INT64, []), value("c_in", TensorProto.BOOL, []), value("acc_in", TensorProto.FLOAT, ["k"])],
        [value("c_out", TensorProto.BOOL, []), value("acc_out", TensorProto.FLOAT, ["k"]), value("scan", TensorProto.FLOAT, ["k"])],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["m", "", "init"], ["final", "scans"], body=body)],
        "g",
        [value("m", TensorProto.INT64, []), value("init", TensorProto.FLOAT, ["k"]), value("x", TensorProto.FLOAT, ["k"])],
        [value("final", TensorProto.FLOAT, ["k"]), value("scans", TensorProto.FLOAT, ["i", "k"])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), "loop.onnx")
    assert cli.main(["check", "loop.onnx", "--examples", "5"]) == 2
    out = capsys.readouterr().out
    assert "ort-cpu: error" in out and "the ONNX reference evaluator raised ValueError: " in out
    assert "an input ort-cpu runs: either the reference does not implement this use of an op" in out
    assert "narrow dims=" not in out


def test_gather_elements_over_a_wide_table_is_evaluated_as_onnx_runtime_does(tmp_path, capsys, monkeypatch):
    """torch.gather in every dynamo-exported BERT: GatherElements over a 64-wide table. Before,
    the ONNX reference evaluator raised on it (its np.choose takes 32 choices at most) and the
    check failed a correct file; its out-of-range indices wrapped around instead of failing."""
    from onnxparity.variants import VariantRunError
    from onnxparity.variants.reference import ReferenceRunnable

    monkeypatch.chdir(tmp_path)
    table = numpy_helper.from_array(np.arange(128, dtype=np.float32).reshape(2, 64), "table")
    graph = helper.make_graph(
        [helper.make_node("GatherElements", ["table", "idx"], ["y"], axis=1)],
        "g",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, [2, "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, "seq"])],
        [table],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), "gather.onnx")
    assert cli.main(["check", "gather.onnx", "--examples", "8"]) == 0, capsys.readouterr().out
    evaluator = ReferenceRunnable("gather.onnx")
    (y,) = evaluator.run({"idx": np.array([[0, 63, -64], [1, -1, 5]], np.int64)})
    assert y.tolist() == [[0, 63, 0], [65, 127, 69]]
    with pytest.raises(VariantRunError, match="an index outside \\[-64, 63\\] along axis 1"):
        evaluator.run({"idx": np.array([[64, 0, 0], [0, 0, 0]], np.int64)})


def test_where_the_evaluator_is_the_reference_the_spec_takes_no_side(tmp_path, capsys, monkeypatch):
    """An LSTM with sequence_lens: ONNX Runtime zeroes the steps past each length, the ONNX
    reference evaluator ignores the lengths. With the evaluator as the reference, the check said
    "the spec computes this value as the reference does: ONNX Runtime parts from the spec here —
    an ONNX Runtime bug": the evaluator agreeing with itself. It now says the spec takes no side."""
    monkeypatch.chdir(tmp_path)
    rs = np.random.RandomState(0)
    weights = [
        numpy_helper.from_array(rs.randn(1, 12, 2).astype(np.float32), "W"),
        numpy_helper.from_array(rs.randn(1, 12, 3).astype(np.float32), "R"),
        numpy_helper.from_array(np.zeros((1, 24), np.float32), "B"),
    ]
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["X", "W", "R", "B", "lens"], ["Y"], hidden_size=3)],
        "g",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", "batch", 2]),
            helper.make_tensor_value_info("lens", TensorProto.INT32, ["batch"]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["seq", 1, "batch", 3])],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), "lstm.onnx")
    assert cli.main(["check", "lstm.onnx", "--examples", "10"]) == 1
    out = capsys.readouterr().out
    assert "the reference here is the ONNX reference evaluator itself, so the spec takes no side" in out
    assert "an ONNX Runtime bug" not in out and "ONNX Runtime is what differs" not in out


def _conv_stack(path) -> str:
    """Conv (kernel 3, padded) then Conv (kernel 3, dilation 2, stride 2, unpadded) over a length
    axis: the second needs a length of at least 5."""
    rs = np.random.RandomState(0)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["h"], pads=[1, 1]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Conv", ["r", "w2"], ["y"], dilations=[2], strides=[2]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, "len"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "out"])],
        [
            numpy_helper.from_array(rs.randn(4, 2, 3).astype(np.float32), "w1"),
            numpy_helper.from_array(rs.randn(3, 4, 3).astype(np.float32), "w2"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_a_convolution_stack_is_drawn_at_lengths_its_windows_take(tmp_path, capsys, monkeypatch):
    """Before: 'len' was drawn from 1; at 4 and less ONNX Runtime refuses the input while the
    reference evaluator returns an empty output, and the correct file failed ('look for a dim
    the exporter baked in'). ONNX's own shape inference says 1 at length 4 (it truncates the
    window count toward zero): each window is checked against its input too."""
    from onnxparity.exporters.prebuilt import graph_inputs
    from onnxparity.graph.sizes import least_dims
    from onnxparity.spec import Dim

    monkeypatch.chdir(tmp_path)
    model = onnx.load(_conv_stack(tmp_path / "conv.onnx"))
    dims = {"batch": Dim(1, 16), "len": Dim(1, 16)}
    assert least_dims(model, graph_inputs(model), dims, {"batch", "len"}) == {"batch": Dim(1, 16), "len": Dim(5, 16)}
    assert least_dims(model, graph_inputs(model), dims, {"batch"})["len"] == Dim(1, 16)  # declared: left alone
    assert cli.main(["check", "conv.onnx", "--examples", "10"]) == 0, capsys.readouterr().out


def _deep_stack(path) -> str:
    """Five 3x3 stride-2 unpadded convolutions over (H, W): each axis needs 63 pixels."""
    rs = np.random.RandomState(0)
    nodes, weights, previous, channels = [], [], "x", 3
    for i in range(5):
        weights.append(numpy_helper.from_array((rs.randn(4, channels, 3, 3) * 0.3).astype(np.float32), f"w{i}"))
        nodes += [
            helper.make_node("Conv", [previous, f"w{i}"], [f"c{i}"], strides=[2, 2]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        previous, channels = f"r{i}", 4
    nodes.append(helper.make_node("GlobalAveragePool", [previous], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 1, 1])],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_a_deep_convolution_stack_is_drawn_past_the_default_range(tmp_path, capsys, monkeypatch):
    """Before: a correct file of five stride-2 windows (63 pixels a side at least) was drawn at
    1-16, every input refused on both sides: exit 2 and advice about 'an index, a size or a
    count'. The undeclared spatial dims now grow together until the windows fit, then each takes
    its 16 values from its least size; the batch stays at 1-16, a declared dim is left alone."""
    from onnxparity.exporters.prebuilt import graph_inputs
    from onnxparity.graph.sizes import least_dims
    from onnxparity.spec import Dim

    monkeypatch.chdir(tmp_path)
    model = onnx.load(_deep_stack(tmp_path / "deep.onnx"))
    dims = {"batch": Dim(1, 16), "h": Dim(1, 16), "w": Dim(1, 16)}
    grown = least_dims(model, graph_inputs(model), dims, {"batch", "h", "w"})
    assert grown == {"batch": Dim(1, 16), "h": Dim(63, 78), "w": Dim(63, 78)}
    declared = least_dims(model, graph_inputs(model), {**dims, "w": Dim(100, 120)}, {"batch", "h"})
    assert declared == {"batch": Dim(1, 16), "h": Dim(63, 78), "w": Dim(100, 120)}
    assert cli.main(["check", "deep.onnx", "--examples", "10"]) == 0, capsys.readouterr().out
