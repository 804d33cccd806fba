"""The pytest plugin, through real inner sessions (pytester): outcomes and message lines."""

from __future__ import annotations

import re
from dataclasses import fields

import onnx
import pytest
from onnx import TensorProto, helper

import onnxparity as op
from onnxparity import config as cfg
from parity_models import Activations, move_clip_max, set_softmax_axis

pytestmark = pytest.mark.usefixtures("warm_exporter")

HEADER = """
import pytest, torch
import onnxparity as op
from parity_models import {models}
"""

NOOPT_CONFTEST = """
import onnxparity as op
from onnxparity.variants.ort import OrtRunnable
op.register_variant(
    "ort-noopt-test",
    lambda c: OrtRunnable(c.model_path, ["CPUExecutionProvider"], optimization="none"),
    replace=True,
)
"""

MLP_TEST = (
    HEADER.format(models="Mlp")
    + """
@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 16), low=-2, high=2)],
    dims={"batch": op.Dim(1, 8)},
    variants=["ort-cpu"],
    examples=4,
)
def test_mlp(onnx_parity):
    onnx_parity.check(Mlp().eval())

def test_unrelated():
    pass
"""
)


def test_passing_model_gives_one_item_per_variant(pytester: pytest.Pytester):
    pytester.makepyfile(test_models=MLP_TEST)
    result = pytester.runpytest(cfg.FLAG_ENABLE, "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_mlp[[]ort-cpu[]] PASSED*"])


SCALE_TEST = """
import os, sys
import numpy as np
import pytest
import onnxparity as op

@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4))], dims={"batch": op.Dim(1, 4)},
                         variants=["ort-cpu", "ort-noopt-test"], examples=3)
def test_scale(onnx_parity, request):
    onnx_parity.check(onnx=os.path.join(os.path.dirname(__file__), "scale.onnx"),
                      reference=lambda x: np.tanh(x) * 3)
    if hasattr(request.config, "workerinput"):  # a fresh worker: a prebuilt model needs no framework
        assert "torch" not in sys.modules
"""


def save_scale_model(path) -> None:
    """tanh(x) * 3 as an ONNX graph, so the inner session needs no framework."""
    graph = helper.make_graph(
        [helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Mul", ["t", "three"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor("three", TensorProto.FLOAT, [], [3.0])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("xdist", [[], ["-n", "0"], ["-n", "2"]], ids=["no-xdist", "n0", "n2"])
def test_parity_items_run_under_xdist(pytester: pytest.Pytester, xdist):
    pytester.makeconftest(NOOPT_CONFTEST)
    save_scale_model(pytester.path / "scale.onnx")
    pytester.makepyfile(test_inline=SCALE_TEST)
    result = pytester.runpytest(cfg.FLAG_ENABLE, "-rA", *xdist)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        [
            "PASSED test_inline.py::test_scale[[]ort-cpu[]]",
            "PASSED test_inline.py::test_scale[[]ort-noopt-test[]]",
        ]
    )


def test_items_are_skipped_without_the_flag_saying_how_to_enable(pytester: pytest.Pytester):
    pytester.makepyfile(test_models=MLP_TEST)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*ONNX parity checks are off: run pytest with --onnx-parity*"])


def test_ini_key_enables_and_sets_examples(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nonnx_parity = true\nonnx_parity_examples = 2\n")
    pytester.makepyfile(
        test_models=HEADER.format(models="Mlp")
        + """
@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 8)})
def test_mlp(onnx_parity):
    result = onnx_parity.check(Mlp().eval())
    assert result.examples <= 2 + 2  # drawn + the two boundary shapes
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_unmarked_fixture_takes_variants_from_ini_and_inputs_from_check(pytester: pytest.Pytester):
    pytester.makeconftest(NOOPT_CONFTEST)
    pytester.makeini("[pytest]\nonnx_parity_variants = ort-cpu ort-noopt-test\n")
    pytester.makepyfile(
        test_unmarked=HEADER.format(models="Mlp")
        + """
def test_mlp(onnx_parity):
    onnx_parity.check(Mlp().eval(), inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 4)}, examples=2)

def test_no_inputs(onnx_parity):
    onnx_parity.check(Mlp().eval())
"""
    )
    result = pytester.runpytest(cfg.FLAG_ENABLE, "-v")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*test_mlp[[]ort-cpu[]] PASSED*",
            "*test_mlp[[]ort-noopt-test[]] PASSED*",
            "InvalidSpec: Mlp does not declare its inputs: give inputs=[[]op.Input(name, shape, dtype=...)[]] (on the onnx_parity marker or in check())",
        ]
    )


def save_edited_activations(parity_session, pytester: pytest.Pytester, edit, filename: str) -> None:
    """Export Activations once, plant a bug with ``edit``, save it where the inner test finds it."""
    spec = op.ParitySpec(
        inputs=(op.Input("x", ("batch", 8), low=-10, high=10),), dims={"batch": op.Dim(1, 8)}
    )
    exported = onnx.load(parity_session.prepare(Activations().eval(), spec).exported.path)
    onnx.save(edit(exported), str(pytester.path / filename))


def test_broken_onnx_fails_with_a_diagnosis(pytester: pytest.Pytester, parity_session):
    save_edited_activations(parity_session, pytester, lambda m: set_softmax_axis(m, 0), "broken.onnx")
    pytester.makepyfile(
        test_broken=HEADER.format(models="Activations")
        + """
@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 8), low=-10, high=10)],
    dims={"batch": op.Dim(1, 8)},
    tolerance={"ort-cpu": op.Tolerance(atol=1e-5, rtol=1e-4)},
)
def test_activations(onnx_parity):
    onnx_parity.check(Activations().eval(), onnx="broken.onnx")
"""
    )
    result = pytester.runpytest(cfg.FLAG_ENABLE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_activations[[]ort-cpu[]]*",
            "ort-cpu differs from the reference (model from prebuilt ONNX, opset *):",
            "output 'output_1': * of * values differ (*%) beyond atol=1e-05, rtol=0.0001",
            "  max abs error * mean abs error * max rel error *",
            "  worst*mismatches:",
            "    index*expected*actual*difference",
            "shrunk input: dims batch=*; x[[]*, 8[]] *; seed *",
            "examples tried: *",
            "reproducer: */.onnxparity/reproducers/test_broken.py_test_activations-*/ort-cpu",
            "next: inspect the reproducer; if this difference is acceptable, loosen tolerance=*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("E   AssertionError*")
    assert (pytester.path / ".onnxparity" / "reproducers" / ".gitignore").exists()


def test_value_range_bug_is_caught_at_the_range_edge(pytester: pytest.Pytester, parity_session):
    save_edited_activations(parity_session, pytester, lambda m: move_clip_max(m, 5.5), "clip.onnx")
    pytester.makepyfile(
        test_clip=HEADER.format(models="Activations")
        + """
@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 8), low=-10, high=10)], dims={"batch": op.Dim(1, 8)})
def test_clip(onnx_parity):
    onnx_parity.check(Activations().eval(), onnx="clip.onnx")
"""
    )
    result = pytester.runpytest(cfg.FLAG_ENABLE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["output 'output_0': * values differ*", "*12*11*-1*"]
    )  # 2*6 expected, 2*5.5 actual


def test_shape_specialisation_bug_is_caught_at_other_shapes(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_baked=HEADER.format(models="BakedBatch")
        + """
@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4, 5))], dims={"batch": op.Dim(1, 8)})
def test_baked(onnx_parity):
    onnx_parity.check(BakedBatch().eval())
"""
    )
    result = pytester.runpytest(cfg.FLAG_ENABLE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "ort-cpu raised on an input the spec declares valid (model from torch.onnx dynamo exporter, opset *):",
            "*Got invalid dimensions for input: x*",
            "shrunk input: dims batch=1; x[[]1, 4, 5[]] *",
            "note: input 'x' axis 0 ('batch') is fixed at size 2 in the ONNX graph*",
        ]
    )


def test_training_mode_and_invalid_spec_fail_with_their_messages(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_bad=HEADER.format(models="Mlp")
        + """
@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 8)})
def test_training(onnx_parity):
    onnx_parity.check(Mlp())

@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", "seq"))], dims={"batch": op.Dim(1, 8)})
def test_unknown_dim(onnx_parity):
    onnx_parity.check(Mlp().eval())

@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 8)}, tolerence=1)
def test_typo(onnx_parity):
    onnx_parity.check(Mlp().eval())

@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 8)}, variants=["ort-cpy"])
def test_unknown_variant(onnx_parity):
    onnx_parity.check(Mlp().eval())
"""
    )
    result = pytester.runpytest(cfg.FLAG_ENABLE)
    result.assert_outcomes(failed=4)
    result.stdout.no_fnmatch_line("*During handling of the above exception*")
    result.stdout.fnmatch_lines_random(
        [
            "ExportError: Mlp is in training mode (Mlp has training=True): call model.eval() first: dropout/batch-norm make outputs random",
            "InvalidSpec: Input('x'): unknown dim name 'seq' at axis 1 (known: batch); declare it in dims=*",
            "InvalidSpec: unknown onnx_parity argument 'tolerence'; known: inputs, dims, variants, tolerance, opset, examples, data, variant_options, calibration, latency, outputs",
            "unknown variant 'ort-cpy'; known variants: *ort-cpu*",
        ]
    )


def test_variants_flag_deselects_other_variants(pytester: pytest.Pytester):
    pytester.makeconftest(NOOPT_CONFTEST)
    pytester.makepyfile(
        test_two=HEADER.format(models="Mlp")
        + """
@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 8)}, variants=["ort-cpu", "ort-noopt-test"], examples=3)
def test_mlp(onnx_parity):
    onnx_parity.check(Mlp().eval())
"""
    )
    both = pytester.runpytest(cfg.FLAG_ENABLE, "-v")
    both.assert_outcomes(passed=2)
    both.stdout.fnmatch_lines_random(
        ["*test_mlp[[]ort-cpu[]] PASSED*", "*test_mlp[[]ort-noopt-test[]] PASSED*"]
    )
    one = pytester.runpytest(cfg.FLAG_ENABLE, f"{cfg.FLAG_VARIANTS}=ort-noopt-test")
    one.assert_outcomes(passed=1, deselected=1)


def test_help_documents_every_flag_and_ini_key(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per help text: no wrapping inside names
    result = pytester.runpytest("--help")
    flags, helps, inis = [], [], []
    for s in cfg.SETTINGS:
        metavar = f"={re.escape(s.metavar)}" if s.metavar else ""
        flags.append(rf"\s+{re.escape(s.flag)}{metavar}(\s|$)")
        helps.append(rf".*\s{re.escape(s.describe(op.ALL_VARIANTS).replace('%%', '%'))}$")
        if s.ini is not None:
            inis.append(rf"\s+{re.escape(s.ini)} \({s.ini_kind}\):")
    flag_only = {s.name for s in cfg.SETTINGS if s.ini is None}
    assert len(flags) == len(cfg.SETTINGS) and flag_only == {"update_baseline", "shard"}  # one run's choices
    result.stdout.re_match_lines_random(flags + helps + inis)
    result.stdout.fnmatch_lines([f"*built in: {', '.join(op.ALL_VARIANTS)})"])
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.onnx_parity(inputs=*one test item per variant*"])


def test_flag_beats_ini_key_beats_default(pytester: pytest.Pytester):
    """The resolved config, as a test sees it; paths are joined to the table's directory."""
    pytester.makeini(
        "[pytest]\nonnx_parity_examples = 2\nonnx_parity_latency = off\n"
        "onnx_parity_variants = fp16 ort-cpu\nonnx_parity_report = from-ini.json\n"
    )
    pytester.makepyfile(
        test_config="""
import os
from onnxparity.plugin import CONFIG_KEY

def test_config(request):
    parity = request.config.stash[CONFIG_KEY]
    root = str(request.config.rootpath)
    assert (parity.examples, parity.threads, parity.latency) == (3, 1, "off")
    assert parity.variants == ("fp16", "ort-cpu") and parity.require_gpu
    assert parity.report_path == os.path.join(os.getcwd(), "from-ini.json")
    assert parity.reproducer_dir == os.path.join(root, "repro")
    assert (parity.max_error_growth, parity.max_latency_regression) == (2.0, 0.5)
    assert parity.spell("latency", "off") == "--onnx-parity-latency=off"
"""
    )
    result = pytester.runpytest(
        f"{cfg.FLAG_EXAMPLES}=3",
        cfg.FLAG_REQUIRE_GPU,
        f"{cfg.FLAG_REPRODUCERS}=repro",
        f"{cfg.FLAG_MAX_LATENCY_REGRESSION}=0.5",
    )
    result.assert_outcomes(passed=1)


def test_settings_table_is_the_config_and_spell_names_its_settings():
    # beyond the settings: how messages word them, and the verify mode the cache setting selects
    assert [s.name for s in cfg.SETTINGS] + ["wording", "cache_verify"] == [
        f.name for f in fields(cfg.ParityConfig)
    ]
    assert cfg.ParityConfig() == cfg.ParityConfig(**cfg.DEFAULTS)
    assert (cfg.DEFAULT_MAX_ERROR_GROWTH, cfg.DEFAULT_MAX_LATENCY_REGRESSION) == (2.0, 0.2)
    flags = cfg.ParityConfig(wording="pytest")
    assert flags.spell("require_gpu") == cfg.FLAG_REQUIRE_GPU
    assert flags.spell("require_gpu", False) == f"without {cfg.FLAG_REQUIRE_GPU}"
    assert flags.spell("latency", "off") == "--onnx-parity-latency=off"
    assert flags.spell("variants", ("ort-cpu", "fp16")) == "--onnx-parity-variants=ort-cpu,fp16"
    assert flags.spell("report_path", "my dir/r.json") == "--onnx-parity-report='my dir/r.json'"
    library = cfg.ParityConfig()
    assert library.spell("require_gpu") == "require_gpu=True"
    assert library.spell("latency", "off") == "latency='off'"
    assert library.spell("examples") == "examples"
    with pytest.raises(ValueError, match="unknown setting 'latencey'; known: enabled, examples"):
        library.spell("latencey")
    with pytest.raises(ValueError, match="wording='flags'"):
        cfg.ParityConfig(wording="flags")


def test_bad_flag_and_ini_values_fail_before_the_run(pytester: pytest.Pytester):
    pytester.makepyfile(test_models=MLP_TEST)
    flag = pytester.runpytest(f"{cfg.FLAG_EXAMPLES}=0")
    assert flag.ret == pytest.ExitCode.USAGE_ERROR
    flag.stderr.fnmatch_lines(["*--onnx-parity-examples must be a positive integer, got '0'*"])
    pytester.makeini("[pytest]\nonnx_parity_threads = many\n")
    ini = pytester.runpytest()
    assert ini.ret == pytest.ExitCode.USAGE_ERROR
    ini.stderr.fnmatch_lines(["*ini key onnx_parity_threads must be a positive integer, got 'many'*"])
    pytester.makeini("[pytest]\nonnx_parity_require_gpu = maybe\n")
    switch = pytester.runpytest()
    assert switch.ret == pytest.ExitCode.USAGE_ERROR
    switch.stderr.fnmatch_lines(["*ini key onnx_parity_require_gpu: invalid truth value 'maybe'*"])


def test_variant_items_build_the_same_randomly_initialised_model(pytester: pytest.Pytester):
    """The fixture seeds torch per test, so every variant item exports the same model once."""
    pytester.makeconftest(NOOPT_CONFTEST)
    pytester.makepyfile(
        test_seeded=HEADER.format(models="Mlp")
        + """
from onnxparity.plugin import SESSION_KEY

@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 8)}, variants=["ort-cpu", "ort-noopt-test"], examples=3)
def test_mlp(onnx_parity, request):
    onnx_parity.check(Mlp().eval())  # random init, no seed set by the test
    assert request.config.stash[SESSION_KEY].counts["exports"] == 1
"""
    )
    pytester.runpytest(cfg.FLAG_ENABLE).assert_outcomes(passed=2)


def test_a_long_search_shows_its_progress(pytester: pytest.Pytester):
    """A model taking seconds per call once ran behind one silent dot."""
    pytester.makeconftest("import onnxparity.search.engine\nonnxparity.search.engine.PROGRESS_EVERY = 0.0\n")
    pytester.makepyfile(
        test_slow="""
import numpy as np, pytest
from onnx import TensorProto, helper
import onnxparity as op

def model():
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 3))], dims={"batch": op.Dim(1, 4)}, examples=3)
def test_slow(onnx_parity):
    onnx_parity.check(onnx=model(), reference=lambda x: x * x)
"""
    )
    # with pytest's output capturing on (the default), as a user runs it: the lines once went
    # into the captured output, shown only for a failure
    result = pytester.runpytest_subprocess(cfg.FLAG_ENABLE, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "test_slow.py ",
            "onnx parity: test_slow.py::test_slow [[]ort-cpu[]]: */3 examples, now dims batch=*",
        ]
    )
