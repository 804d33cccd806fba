"""Declared outputs (issue 28, item 5): ``op.Output(name, unordered=True)`` compares a
detection-style output's rows as a set, ``sort_by=`` sorts them first; boxes that swap order
between near-equal scores then compare equal, and a box that really moved still fails."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxparity as op
from onnxparity import config as cfg
from onnxparity.verdict import outputs as outputs_module
from onnxparity.verdict.compare import compare_outputs

TOL = op.Tolerance()
UNORDERED = op.Output("boxes", unordered=True)


# -- declarations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name=""), "name must be a non-empty string"),
        (dict(name="boxes"), "declares nothing: give unordered=True"),
        (dict(name="boxes", unordered=True, sort_by=0), "both given: choose one"),
        (dict(name="boxes", unordered="yes"), "unordered='yes': give True or False"),
        (dict(name="boxes", sort_by="score"), "give a column index of a row"),
        (dict(name="boxes", sort_by=[]), "sorts by nothing"),
        (dict(name="boxes", sort_by=[4, 4]), "names a column twice"),
        (dict(name="boxes", sort_by=[4, 0.5]), "0.5 is not a column index"),
        (dict(name="boxes", sort_by=True), "sort_by=True: give a column index"),
        (dict(name="boxes", unordered=True, axis=-1), "axis=-1: give the index"),
        (dict(name="boxes", unordered=True, together_with=["boxes"]), "names the output itself"),
        (dict(name="boxes", unordered=True, together_with=[3]), "give a list of output names"),
    ],
)
def test_a_bad_output_declaration_names_the_value_and_the_fix(kwargs, message):
    with pytest.raises(op.InvalidSpec, match=message):
        op.Output(**kwargs)


def test_an_output_declaration_is_normalized_and_described():
    item = op.Output("dets", sort_by=[4, 0], axis=1, together_with="labels")
    assert item.sort_by == (4, 0) and item.together_with == ("labels",)
    assert item.describe() == "op.Output('dets', sort_by=[4, 0], axis=1, together_with=['labels'])"
    assert item.to_dict() == {
        "name": "dets",
        "unordered": False,
        "sort_by": [4, 0],
        "axis": 1,
        "together_with": ["labels"],
    }
    assert op.Output("boxes", sort_by=-1).describe() == "op.Output('boxes', sort_by=-1)"


def test_the_spec_takes_outputs_and_refuses_one_declared_twice():
    inputs = [op.Input("x", ("n", 4))]
    dims = {"n": op.Dim(2, 8)}
    spec = op.ParitySpec(inputs=inputs, dims=dims, outputs=UNORDERED)
    assert spec.outputs == (UNORDERED,)
    with pytest.raises(op.InvalidSpec, match="is not an op.Output"):
        op.ParitySpec(inputs=inputs, dims=dims, outputs=["boxes"])
    with pytest.raises(op.InvalidSpec, match="'boxes' is declared twice"):
        op.ParitySpec(inputs=inputs, dims=dims, outputs=[UNORDERED, op.Output("boxes", sort_by=0)])
    with pytest.raises(op.InvalidSpec, match="'scores' is declared twice"):
        op.ParitySpec(
            inputs=inputs,
            dims=dims,
            outputs=[
                op.Output("boxes", unordered=True, together_with=["scores"]),
                op.Output("scores", unordered=True),
            ],
        )


# -- the verdict ------------------------------------------------------------------------------


def boxes(n: int = 6, seed: int = 0) -> np.ndarray:
    """(n, 5) rows x1, y1, x2, y2, score, sorted by score (two near-equal scores at the top)."""
    rng = np.random.default_rng(seed)
    corners = rng.random((n, 2), dtype=np.float32)
    rows = np.concatenate([corners, corners + rng.random((n, 2), dtype=np.float32), np.zeros((n, 1))], 1)
    rows[:, 4] = np.linspace(0.9, 0.1, n)
    rows[1, 4] = np.float32(0.5) + np.float32(1e-7)
    rows[0, 4] = 0.5 + 2e-7
    return rows.astype(np.float32)


def test_rows_in_another_order_fail_in_order_and_pass_as_a_set_or_sorted():
    expected = boxes()
    actual = expected[[1, 0, 2, 3, 5, 4]]  # the two near-equal scores swapped, and two more rows
    assert not compare_outputs(["boxes"], [expected], [actual], TOL).passed
    for declared in (UNORDERED, op.Output("boxes", sort_by=0), op.Output("boxes", sort_by=[-1, 1])):
        verdict = compare_outputs(["boxes"], [expected], [actual], TOL, declared=[declared])
        assert verdict.passed, verdict.explain()
        match = verdict.outputs[0].rows
        assert match is not None and match.moved == 4 and match.rows == 6
        assert match.declared == declared.describe()


def test_a_failure_of_rows_in_another_order_names_the_declaration():
    expected = boxes()
    verdict = compare_outputs(["boxes"], [expected], [expected[[1, 0, 2, 3, 4, 5]]], TOL)
    assert verdict.outputs[0].reordered_axis == 0 and verdict.outputs[0].to_dict()["reordered_axis"] == 0
    assert "declare outputs=[op.Output('boxes', unordered=True)]" in verdict.explain()
    batched = np.stack([expected, expected])
    verdict = compare_outputs(["dets"], [batched], [batched[:, ::-1]], TOL)
    assert "declare outputs=[op.Output('dets', unordered=True, axis=1)]" in verdict.explain()
    moved = expected[[1, 0, 2, 3, 4, 5]].copy()
    moved[0, 0] += 0.25  # not only another order: no such line
    verdict = compare_outputs(["boxes"], [expected], [moved], TOL)
    assert verdict.outputs[0].reordered_axis is None and "op.Output" not in verdict.explain()


def test_rows_in_order_pass_without_pairing():
    expected = boxes()
    verdict = compare_outputs(["boxes"], [expected], [expected.copy()], TOL, declared=[UNORDERED])
    assert verdict.passed and verdict.outputs[0].rows is None


def test_a_box_that_moved_still_fails_as_a_set_named_by_the_reference_row():
    expected = boxes()
    actual = expected[[1, 0, 2, 3, 4, 5]].copy()
    actual[0, [0, 2]] += 0.25  # reference row 1, now first: moved right
    verdict = compare_outputs(["boxes"], [expected], [actual], TOL, declared=[UNORDERED])
    assert not verdict.passed
    result = verdict.outputs[0]
    assert result.mismatched == 2 and {m.index for m in result.worst} == {(1, 0), (1, 2)}
    assert {m.actual_index for m in result.worst} == {(0, 0), (0, 2)}
    text = verdict.explain()
    assert "rows compared as a set" in text and "op.Output('boxes', unordered=True)" in text
    assert "ONNX index" in text, text
    entry = result.to_dict()
    assert entry["rows"]["rule"] == "unordered" and entry["worst"][0]["actual_index"][0] == 0


def test_a_row_without_a_partner_fails_and_is_listed():
    expected = boxes()
    verdict = compare_outputs(["boxes"], [expected], [expected[[5, 0, 1, 2, 3]]], TOL, declared=[UNORDERED])
    result = verdict.outputs[0]
    assert not verdict.passed and result.problem == "values" and result.mismatched == 5
    assert result.rows.missing == 1 and result.rows.missing_rows == ((4,),)
    assert "1 reference row(s) with no ONNX row (each a failure): [4]" in verdict.explain()
    extra = compare_outputs(["boxes"], [expected[:4]], [expected[::-1]], TOL, declared=[UNORDERED])
    assert not extra.passed and extra.outputs[0].rows.extra == 2
    none = np.zeros((0, 5), np.float32)  # no detection on one side
    for reference, onnx_rows, side in ((none, expected[:2], "extra"), (expected[:2], none, "missing")):
        verdict = compare_outputs(["boxes"], [reference], [onnx_rows], TOL, declared=[UNORDERED])
        assert not verdict.passed and getattr(verdict.outputs[0].rows, side) == 2
    # sorted rows need as many on each side: a shape failure, as without the declaration
    sorted_ = compare_outputs(
        ["boxes"], [expected], [expected[:5]], TOL, declared=[op.Output("boxes", sort_by=0)]
    )
    assert sorted_.outputs[0].problem == "shape"


def test_outputs_together_share_one_pairing():
    """torchvision's format: boxes, labels and scores are three outputs of one row order."""
    expected = boxes()
    labels = np.arange(6, dtype=np.int64)
    names = ["boxes", "scores", "labels"]
    reference = [expected[:, :4], expected[:, 4], labels]
    order = [1, 0, 2, 3, 5, 4]
    declared = [op.Output("boxes", unordered=True, together_with=["scores", "labels"])]
    swapped = [expected[order, :4], expected[order, 4], labels[order]]
    assert compare_outputs(names, reference, swapped, TOL, declared=declared).passed
    wrong = [expected[order, :4], expected[order, 4], labels]  # labels left in the old order
    verdict = compare_outputs(names, reference, wrong, TOL, declared=declared)
    assert [o.name for o in verdict.failed_outputs] == ["labels"]
    alone = [op.Output(n, unordered=True) for n in names]  # each its own set: weaker, still passes
    assert compare_outputs(names, reference, wrong, TOL, declared=alone).passed


def test_batch_axes_are_paired_entry_by_entry():
    rng = np.random.default_rng(1)
    expected = rng.random((3, 4, 6)).astype(np.float32)
    actual = expected[:, ::-1]
    declared = [op.Output("dets", unordered=True, axis=1)]
    assert compare_outputs(["dets"], [expected], [actual], TOL, declared=declared).passed
    across = actual.copy()
    across[0], across[1] = actual[1], actual[0]  # rows of another image: not the same set
    assert not compare_outputs(["dets"], [expected], [across], TOL, declared=declared).passed


def test_one_dimensional_and_string_outputs_pair_by_value():
    scores = np.array([0.9, 0.6, 0.5, 0.2], dtype=np.float32)
    assert not compare_outputs(["s"], [scores], [scores[[0, 2, 1, 3]]], TOL).passed
    for declared in (op.Output("s", unordered=True), op.Output("s", sort_by=0)):
        assert compare_outputs(["s"], [scores], [scores[[0, 2, 1, 3]]], TOL, declared=[declared]).passed
    names = np.array(["cat", "dog", "dog", "car"], dtype=object)
    for declared in (op.Output("s", unordered=True), op.Output("s", sort_by=0)):
        assert compare_outputs(["s"], [names], [names[::-1]], TOL, declared=[declared]).passed
        assert not compare_outputs(["s"], [names], [names[[0, 0, 1, 3]]], TOL, declared=[declared]).passed


def test_agreement_metrics_see_the_paired_rows():
    expected = boxes()
    agreement = op.Agreement(cosine=0.999)
    verdict = compare_outputs(["boxes"], [expected], [expected[::-1]], agreement, declared=[UNORDERED])
    assert verdict.passed and verdict.outputs[0].cosine == pytest.approx(1.0)


def test_pairing_in_bounded_rounds_finds_every_pair(monkeypatch):
    """Beyond PAIRS candidate pairs, a round keeps each row's nearest and pairs the rest later
    (here rows repeat, so rows' nearest collide and it takes several rounds; the rows are off
    by a float step, so none pairs bit for bit first)."""
    rng = np.random.default_rng(2)
    expected = np.repeat(rng.random((30, 4)).astype(np.float32), 10, axis=0)
    actual = np.nextafter(expected[rng.permutation(300)], np.float32(2))
    calls = []
    greedy = outputs_module._greedy
    monkeypatch.setattr(outputs_module, "_greedy", lambda *a: calls.append(1) or greedy(*a))
    monkeypatch.setattr(outputs_module, "PAIRS", 512)
    verdict = compare_outputs(["boxes"], [expected], [actual], TOL, declared=[UNORDERED])
    assert verdict.passed and verdict.outputs[0].rows.moved > 250 and calls
    actual[7, 1] += 0.5
    verdict = compare_outputs(["boxes"], [expected], [actual], TOL, declared=[UNORDERED])
    assert not verdict.passed and verdict.outputs[0].mismatched == 1


@pytest.mark.parametrize(
    "names, reference, declared, message",
    [
        (["dets"], [np.zeros((2, 5))], UNORDERED, r"no output 'boxes' \(its outputs: 'dets'\)"),
        (["boxes"], [np.float32(1)], UNORDERED, r"has shape \[\], no axis 0 to take rows along"),
        (["boxes"], [np.zeros((2, 5))], op.Output("boxes", sort_by=5), "sort_by=5 is out of range"),
        (["boxes"], [np.zeros((2, 5))], op.Output("boxes", sort_by=-6), "have 5 columns"),
        (
            ["boxes", "scores"],
            [np.zeros((2, 4)), np.zeros(3)],
            op.Output("boxes", unordered=True, together_with=["scores"]),
            "'scores' has shape \\[3\\] but 'boxes' has \\[2, 4\\]",
        ),
    ],
)
def test_a_declaration_that_does_not_fit_the_outputs_is_an_error(names, reference, declared, message):
    """Checked on every comparison, passing or not: a wrong declaration never passes silently."""
    with pytest.raises(op.InvalidSpec, match=message):
        compare_outputs(names, reference, reference, TOL, declared=[declared])


# -- a detector, end to end -------------------------------------------------------------------

#: the near-tie: 0.5 and 0.5 + 1.2e-7 (two float32 steps) are scores a runtime may order either way
NEAR = 1.2e-7
#: how far ONNX Runtime's sort key is off the framework's: enough to reorder near-equal scores
OFF = 3e-7


def detector_onnx(moved: bool = False) -> onnx.ModelProto:
    """The detector's boxes as an ONNX graph that sorts by a key ``OFF``·x2 off the score: the
    same rows as the framework's, near-equal scores in another order (``moved``: the first
    box also shifted right by 0.1, a real difference)."""
    f = helper.make_node
    nodes = [
        f("Split", ["x", "ones"], ["c0", "c1", "c2", "c3"], axis=1),
        f("Add", ["c0", "c2"], ["right"]),
        f("Add", ["c1", "c3"], ["bottom"]),
        f("Mul", ["c0", "two"], ["c0x2"]),
        f("Floor", ["c0x2"], ["bucket"]),
        f("Mul", ["bucket", "quarter"], ["step"]),
        f("Add", ["half", "step"], ["base"]),
        f("Greater", ["c1", "half"], ["upper"]),
        f("Cast", ["upper"], ["upper_f"], to=TensorProto.FLOAT),
        f("Mul", ["upper_f", "near"], ["nudge"]),
        f("Add", ["base", "nudge"], ["score"]),
        f("Concat", ["c0", "c1", "right", "bottom", "score"], ["rows"], axis=1),
        f("Mul", ["c2", "off"], ["jitter"]),
        f("Add", ["score", "jitter"], ["key2d"]),
        f("Squeeze", ["key2d", "one_axis"], ["key"]),
        f("Shape", ["x"], ["shape"]),
        f("Slice", ["shape", "zero", "one", "zero"], ["n"]),
        f("TopK", ["key", "n"], ["_", "order"], largest=1, sorted=1),
        f("Gather", ["rows", "order"], ["sorted" if moved else "boxes"], axis=0),
    ]
    if moved:
        nodes += [
            f("Slice", ["sorted", "zero", "one", "zero"], ["first"]),
            f("Add", ["first", "shift"], ["first_moved"]),
            f("Slice", ["sorted", "one", "big", "zero"], ["rest"]),
            f("Concat", ["first_moved", "rest"], ["boxes"], axis=0),
        ]
    consts = [
        helper.make_tensor("ones", TensorProto.INT64, [4], [1, 1, 1, 1]),
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("quarter", TensorProto.FLOAT, [], [0.25]),
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("near", TensorProto.FLOAT, [], [NEAR]),
        helper.make_tensor("off", TensorProto.FLOAT, [], [OFF]),
        helper.make_tensor("one_axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("big", TensorProto.INT64, [1], [1 << 30]),
        helper.make_tensor("shift", TensorProto.FLOAT, [1, 5], [0.1, 0.0, 0.1, 0.0, 0.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "detector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["n", 5])],
        consts,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def numpy_detector(x: np.ndarray) -> np.ndarray:
    """The framework's boxes in numpy: sorted by score, ties in row order (a stable sort)."""
    x = x.astype(np.float32)
    score = np.float32(0.5) + np.float32(0.25) * np.floor(x[:, :1] * np.float32(2))
    score = score + (x[:, 1:2] > 0.5).astype(np.float32) * np.float32(NEAR)
    rows = np.concatenate([x[:, :2], x[:, :2] + x[:, 2:], score], axis=1)
    return rows[np.argsort(-score[:, 0], kind="stable")]


@pytest.fixture(scope="module")
def detector():
    """A torch "detector": boxes (x1, y1, x2, y2, score) sorted by score, where scores are 0.5
    or 0.75, some 1.2e-7 higher, so near-equal scores are common. Its ONNX export sorts with
    TopK by a key ``OFF``·x2 off the score, as a runtime computing the score in another order
    would: the same rows, near-ties in another order."""
    torch = pytest.importorskip("torch")
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)

    class Detector(torch.nn.Module):
        def forward(self, x):
            score = 0.5 + 0.25 * torch.floor(x[:, :1] * 2)
            score = score + (x[:, 1:2] > 0.5).float() * NEAR
            rows = torch.cat([x[:, :2], x[:, :2] + x[:, 2:], score], dim=1)
            if torch.onnx.is_in_onnx_export() or exporting():
                order = torch.topk(score[:, 0] + OFF * x[:, 2], x.shape[0]).indices
            else:
                order = torch.argsort(score[:, 0], descending=True, stable=True)
            return {"boxes": rows[order]}

    return Detector().eval()


def check(model, session, onnx_model=None, **declared):
    return op.check(
        model,
        onnx=onnx_model,
        inputs=[op.Input("x", ("n", 4), low=0, high=1)],
        dims={"n": op.Dim(2, 8)},
        examples=10,
        session=session,
        **declared,
    )


def test_the_detector_reference_is_what_the_numpy_one_computes(detector):
    import torch

    x = np.random.default_rng(3).random((8, 4), dtype=np.float32)
    np.testing.assert_array_equal(detector(torch.from_numpy(x))["boxes"].numpy(), numpy_detector(x))


def test_a_detector_whose_export_orders_near_ties_otherwise_passes_only_as_declared(detector, parity_session):
    plain = check(detector, parity_session)
    assert not plain.passed and plain.exporter.startswith("torch")
    assert "declare outputs=[op.Output('boxes', unordered=True)]" in plain.variants["ort-cpu"].message
    for declared in (UNORDERED, op.Output("boxes", sort_by=0)):
        result = check(detector, parity_session, outputs=[declared])
        assert result.passed, result.variants["ort-cpu"].message


def test_the_anchor_pairs_rows_as_declared_too(detector, parity_session):
    """Another variant's distance from the anchor (ort-cpu) is measured on paired rows too."""
    result = check(detector, parity_session, outputs=[UNORDERED], variants=["ort-cpu", "onnx-reference"])
    assert result.passed, result.variants["onnx-reference"].message
    (boxes_summary,) = result.variants["onnx-reference"].outputs
    assert boxes_summary.max_abs_error_vs_ort_cpu == 0.0


def test_a_box_that_really_moved_fails_as_declared(detector, parity_session):
    result = check(detector, parity_session, detector_onnx(moved=True), outputs=[UNORDERED])
    assert not result.passed
    message = result.variants["ort-cpu"].message
    assert "rows compared as a set" in message and "output 'boxes'" in message, message


def test_an_output_the_model_lacks_is_an_error_naming_its_outputs(detector, parity_session):
    with pytest.raises(
        op.InvalidSpec, match=r"no output 'box' \(its outputs: 'boxes'\); did you mean 'boxes'"
    ):
        check(detector, parity_session, outputs=[op.Output("box", unordered=True)])


def test_a_pass_as_declared_is_not_reused_without_the_declaration(detector, tmp_path):
    """Passing results are kept across runs: the declaration is part of what they are kept by."""
    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession

    config = ParityConfig(reproducer_dir=str(tmp_path / "reproducers"), cache_dir=str(tmp_path / "cache"))
    for declared, status in (([UNORDERED], "passed"), ((), "failed"), ([UNORDERED], "passed")):
        with ParitySession(config) as session:
            assert check(detector, session, outputs=declared).variants["ort-cpu"].status == status


PLUGIN_TEST = """
import os
import pytest
import onnxparity as op
from test_outputs import numpy_detector

INPUTS = dict(inputs=[op.Input("x", ("n", 4), low=0, high=1)], dims={"n": op.Dim(2, 8)}, examples=10)
HERE = os.path.dirname(__file__)

@pytest.mark.onnx_parity(**INPUTS, outputs=[op.Output("boxes", unordered=True)])
def test_declared(onnx_parity):
    onnx_parity.check(onnx=os.path.join(HERE, "detector.onnx"), reference=numpy_detector)

@pytest.mark.onnx_parity(**INPUTS)
def test_in_order(onnx_parity):
    onnx_parity.check(onnx=os.path.join(HERE, "detector.onnx"), reference=numpy_detector)

@pytest.mark.onnx_parity(**INPUTS)
def test_declared_in_check(onnx_parity):
    onnx_parity.check(onnx=os.path.join(HERE, "detector.onnx"), reference=numpy_detector,
                      outputs=[op.Output("boxes", sort_by=0)])

@pytest.mark.onnx_parity(**INPUTS, outputs=[op.Output("dets", unordered=True)])
def test_unknown(onnx_parity):
    onnx_parity.check(onnx=os.path.join(HERE, "detector.onnx"), reference=numpy_detector)
"""


def test_the_marker_declares_outputs(pytester: pytest.Pytester):
    onnx.save(detector_onnx(), str(pytester.path / "detector.onnx"))
    pytester.makepyfile(test_detector=PLUGIN_TEST)
    result = pytester.runpytest(cfg.FLAG_ENABLE, "-rA")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "PASSED test_detector.py::test_declared[[]ort-cpu[]]",
            "PASSED test_detector.py::test_declared_in_check[[]ort-cpu[]]",
            "FAILED test_detector.py::test_in_order[[]ort-cpu[]]*",
            "*no output 'dets' (its outputs: 'boxes')*",
        ]
    )
