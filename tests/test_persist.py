"""The persistent cache across runs: exports keyed by everything that determines them (weights,
the user's code, inputs, opset, versions), reused by the next run, missed on a changed line of
``forward`` or a changed weight, refused (and reported) where the code cannot be pinned down;
entries written atomically, safe under concurrent writers, bounded in size."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from onnxparity.persist import MANIFEST, Store, digest

# -- the store -----------------------------------------------------------------------------------


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_an_entry_round_trips_and_a_miss_is_none(tmp_path):
    store = Store(str(tmp_path / "cache"), 1 << 20)
    files = [_file(tmp_path, "model.onnx", "graph"), _file(tmp_path, "model.onnx.data", "weights")]
    assert store.get("exports", "k" * 40, str(tmp_path / "out")) is None
    assert store.put("exports", "k" * 40, files, {"opset": 17})
    assert store.get("exports", "k" * 40, str(tmp_path / "out")) == {"opset": 17}
    assert (tmp_path / "out" / "model.onnx.data").read_text() == "weights"
    assert os.stat(tmp_path / "out" / "model.onnx.data").st_nlink == 1  # a copy: onnx refuses hard links
    assert store.counts == {"hits": 1, "misses": 1, "writes": 1, "evictions": 0, "corrupt": 0}
    assert digest({"a": 1, "b": [2]}) == digest({"b": [2], "a": 1})


def test_an_entry_that_does_not_match_its_manifest_is_a_miss_and_goes(tmp_path):
    store = Store(str(tmp_path / "cache"), 1 << 20)
    store.put("exports", "ab" * 20, [_file(tmp_path, "model.onnx", "graph")], {})
    entry = tmp_path / "cache" / "exports" / "ab" / ("ab" * 20)
    (entry / "model.onnx").write_text("gra")  # truncated by a full disk
    assert store.get("exports", "ab" * 20, str(tmp_path / "out")) is None
    assert not entry.exists() and store.counts["corrupt"] == 1
    store.put("exports", "cd" * 20, [_file(tmp_path, "model.onnx", "graph")], {})
    (tmp_path / "cache" / "exports" / "cd" / ("cd" * 20) / MANIFEST).write_text("{not json")
    assert store.get("exports", "cd" * 20, str(tmp_path / "out")) is None
    assert store.counts["corrupt"] == 2


def test_an_interrupted_write_leaves_no_entry(tmp_path):
    """A writer killed before its rename leaves a staging folder under tmp/, never an entry."""
    store = Store(str(tmp_path / "cache"), 1 << 20)
    staging = tmp_path / "cache" / "tmp" / "123-dead"
    staging.mkdir(parents=True)
    (staging / "model.onnx").write_text("half")
    assert store.entries() == []
    assert store.get("exports", "ef" * 20, str(tmp_path / "out")) is None
    os.utime(staging, (0, 0))  # an hour old: the next eviction sweeps it
    store.evict()
    assert not staging.exists()


def _writer(root, source, barrier):
    store = Store(root, 1 << 20)
    barrier.wait()
    ok = store.put("exports", "99" * 20, [source], {"writer": os.getpid()})
    raise SystemExit(0 if ok else 1)


def test_concurrent_writers_of_one_key_leave_one_whole_entry(tmp_path):
    root, source = str(tmp_path / "cache"), _file(tmp_path, "model.onnx", "x" * 100_000)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    writers = [context.Process(target=_writer, args=(root, source, barrier)) for _ in range(6)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(30)
    assert [w.exitcode for w in writers] == [0] * 6
    store = Store(root, 1 << 20)
    assert len(store.entries()) == 1
    assert store.get("exports", "99" * 20, str(tmp_path / "out")) is not None
    assert (tmp_path / "out" / "model.onnx").read_text() == "x" * 100_000
    assert os.listdir(os.path.join(root, "tmp")) == []  # the losers dropped their copies


def test_the_cache_keeps_to_its_size_least_recently_used_first(tmp_path):
    store = Store(str(tmp_path / "cache"), 2500)
    for key in ("a1", "b2", "c3"):
        store.put("exports", key * 20, [_file(tmp_path, "m.onnx", "x" * 1000)], {})
        manifest = tmp_path / "cache" / "exports" / key[:2] / (key * 20) / MANIFEST
        os.utime(manifest, (100 + len(store.entries()), 100 + len(store.entries())))
    # three entries of ~1 KB do not fit 2.5 KB: the oldest went
    assert store.get("exports", "a1" * 20, str(tmp_path / "o")) is None
    assert store.get("exports", "b2" * 20, str(tmp_path / "o")) is not None
    assert store.counts["evictions"] == 1


# -- exports across runs (the plugin) --------------------------------------------------------------
MODELS = """
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        return torch.tanh(self.fc(x)){tail}
"""

OTHER = """
import torch


class Other(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x)
"""

TESTS = """
import pytest
import torch
import onnxparity as op
from cache_models import Net
from other_models import Other

SPEC = dict(inputs=[op.Input("x", ("batch", 8))], dims={{"batch": op.Dim(1, 3)}}, examples=3)


@pytest.mark.onnx_parity(**SPEC)
def test_net(onnx_parity):
    torch.manual_seed({seed})
    onnx_parity.check(Net().eval())


@pytest.mark.onnx_parity(**SPEC)
def test_other(onnx_parity):
    torch.manual_seed(0)
    onnx_parity.check(Other().eval())


@pytest.mark.onnx_parity(**SPEC, variants=["fp16"], tolerance={{"fp16": op.Agreement(sqnr_db=200)}})
def test_strict(onnx_parity):
    torch.manual_seed(0)
    onnx_parity.check(Other().eval())


@pytest.mark.onnx_parity(**SPEC)
def test_local(onnx_parity):
    class Local(torch.nn.Module):
        def forward(self, x):
            return x * 2

    onnx_parity.check(Local().eval())
"""


def _run(pytester, seed=0, tail=""):
    pytester.makepyfile(cache_models=MODELS.format(tail=tail), other_models=OTHER)
    pytester.makepyfile(test_cached=TESTS.format(seed=seed))
    report = pytester.path / "r.json"
    result = pytester.runpytest_inprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3, failed=1)  # test_strict fails on purpose: failures are never kept
    items = json.loads(report.read_text())["items"]
    exports = {i["test"].split("::")[-1]: i["model"]["cache"] for i in items}
    reused = {i["test"].split("::")[-1] for i in items if "cached" in i["result"]}
    return exports, reused, result


def test_exports_and_passing_results_are_reused_until_a_line_or_a_weight_changes(pytester, warm_exporter):
    stored, reused = "stored in the persistent cache", "reused from the persistent cache"
    first, kept, _ = _run(pytester)
    (pytester.path / "r.json").rename(pytester.path / "fresh.json")
    assert first == {
        "test_net": stored,
        "test_other": stored,
        "test_strict": stored,  # the same model as test_other: one export in this session
        "test_local": "not cached: test_local.<locals>.Local is defined inside a function: it may use values its "
        "source does not show",
    }
    assert kept == set() and (pytester.path / ".onnxparity" / "cache" / "exports").is_dir()
    second, kept, result = _run(pytester)
    assert second == {**first, "test_net": reused, "test_other": reused, "test_strict": reused}
    # passing searches are skipped; the failing one and the uncacheable export run again
    assert kept == {"test_net", "test_other"}
    result.stdout.fnmatch_lines(["*test_net*ort-cpu*passed (cached)*"])
    # a reused result reads like a fresh one, in the report and through the result object
    fresh = json.loads((pytester.path / "fresh.json").read_text())
    again = json.loads((pytester.path / "r.json").read_text())
    for before, after in zip(fresh["items"], again["items"]):
        if "cached" in after["result"]:
            assert {**after["result"], "cached": None} == {**before["result"], "cached": None}
    result.stdout.fnmatch_lines(["*test_strict*fp16*failed *"])
    # a changed line in Net's forward: Net exports and searches again, Other (another file) does not
    changed, kept, _ = _run(pytester, tail=" * 1.0")
    assert (changed["test_net"], changed["test_other"], kept) == (stored, reused, {"test_other"})
    # a changed weight (another seed): exported again
    assert _run(pytester, seed=1, tail=" * 1.0")[0]["test_net"] == stored
    assert _run(pytester, seed=1, tail=" * 1.0")[1] == {"test_net", "test_other"}


def test_the_cache_is_off_with_the_option(pytester, warm_exporter):
    pytester.makepyfile(cache_models=MODELS.format(tail=""), other_models=OTHER)
    pytester.makepyfile(test_cached=TESTS.format(seed=0))
    result = pytester.runpytest_inprocess(
        "--onnx-parity", "--onnx-parity-cache=off", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3, failed=1)
    assert not (pytester.path / ".onnxparity" / "cache").exists()


def test_instance_changes_the_source_does_not_show_are_not_cached():
    import torch

    from onnxparity.exporters.identity import NotCacheable, torch_identity
    from parity_models import Mlp

    model = Mlp().eval()
    torch_identity(model)  # a class from a file: fine
    model.register_forward_hook(lambda m, i, o: o * 2)
    with pytest.raises(NotCacheable, match="Mlp has forward hooks registered"):
        torch_identity(model)
    other = Mlp().eval()
    other.forward = lambda x: x
    with pytest.raises(NotCacheable, match=r"Mlp.forward is replaced on the instance"):
        torch_identity(other)
    del torch


def test_a_reused_results_outputs_read_as_the_fresh_ones():
    from onnxparity.report import OutputSummary
    from onnxparity.stored_results import _summary

    fresh = OutputSummary("y", 1.5e-7, 3e-6, 0.0, 0, 32, None, None, 0, 0, 2e-7, None, None)
    assert _summary(fresh.to_dict()) == fresh
    lossy = OutputSummary("y", float("inf"), float("nan"), 0.5, 3, 32, 0.99, 20.5, 0, 0, None, 0.999, 31.0)
    again = _summary(lossy.to_dict())
    assert again.max_abs_error == float("inf") and again.max_rel_error != again.max_rel_error
    assert (again.min_cosine, again.sqnr_db, again.mismatched) == (0.99, 31.0, 3)


def test_a_cache_that_cannot_be_written_or_read_never_fails_a_run(tmp_path):
    """An entry whose files cannot be copied out is a miss; a read-only cache folder stores
    nothing and the run goes on."""
    store = Store(str(tmp_path / "cache"), 1 << 20)
    source = _file(tmp_path, "model.onnx", "graph")
    assert store.put("exports", "aa" * 20, [source], {})
    (tmp_path / "blocked").write_text("a file where the folder should go")
    assert store.get("exports", "aa" * 20, str(tmp_path / "blocked" / "out")) is None
    os.chmod(tmp_path / "cache", 0o500)
    try:
        if os.access(tmp_path / "cache", os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert store.put("exports", "bb" * 20, [source], {}) is False
    finally:
        os.chmod(tmp_path / "cache", 0o700)


def test_built_variants_are_reused_across_runs_and_a_new_option_builds_again(tmp_path):
    """int8 (dynamic and static, calibrated on drawn inputs) and fp16 conversions are stored
    beside the export: a later run whose search differs (more examples) converts nothing; another
    option of a variant converts that variant again."""
    import torch

    import onnxparity as op
    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession
    from parity_models import Mlp

    torch.manual_seed(0)
    model = Mlp().eval()
    lossy = ("int8-dynamic", "int8-static", "fp16")
    spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 16)),), dims={"batch": op.Dim(1, 4)}, variants=lossy)

    def run(examples, spec=spec):
        config = ParityConfig(reproducer_dir=str(tmp_path / "r"), cache_dir=str(tmp_path / "cache"))
        with ParitySession(config) as session:
            pair = session.prepare(model, spec)
            statuses = [
                session.check_variant(pair, spec, v, name="t", examples=examples).status for v in lossy
            ]
            return statuses, session.counts["exports"], session.counts["cached_builds"]

    assert run(3) == (["passed"] * 3, 1, 0)
    assert run(4) == (["passed"] * 3, 0, 3)  # a new search: the export and all three builds reused
    assert len(os.listdir(tmp_path / "cache" / "variants")) >= 1
    other = op.ParitySpec(
        inputs=spec.inputs,
        dims=spec.dims,
        variants=lossy,
        variant_options={"int8-dynamic": {"per_channel": True}},
    )
    assert run(5, other) == (["passed"] * 3, 0, 2)  # only int8-dynamic converts again
