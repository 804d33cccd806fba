"""Shared fixtures: one ParitySession for the whole self-test run, so each model exports once."""

from __future__ import annotations

import pytest

from onnxparity.config import ParityConfig
from onnxparity.runner import ParitySession


@pytest.fixture(scope="session")
def parity_session(tmp_path_factory: pytest.TempPathFactory):
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path_factory.mktemp("reproducers")))) as session:
        yield session


@pytest.fixture(scope="session")
def warm_exporter(parity_session):
    """Run one export and one check in this process before any pytester inner session.

    pytester's in-process runs drop every module first imported inside an inner session, and
    torch cannot import some of its modules twice (TORCH_LIBRARY registrations raise). Importing
    them out here first keeps them across inner sessions.
    """
    import torch

    import onnxparity as op
    from parity_models import Mlp

    spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 16)),), dims={"batch": op.Dim(1, 4)}, examples=1)
    torch.manual_seed(0)
    prepared = parity_session.prepare(Mlp().eval(), spec)
    parity_session.check_variant(prepared, spec, "ort-cpu", name="warm-up")


@pytest.fixture(autouse=True)
def own_variants():
    """Every variant a test registers is gone after it; one it replaced comes back."""
    import onnxparity as op
    from onnxparity.variants import get_variant, unregister_variant, variant_names

    before = {name: get_variant(name) for name in variant_names()}
    yield
    for name in variant_names():
        info = get_variant(name)
        if name not in before:
            unregister_variant(name)
        elif info is not before[name]:
            was = before[name]
            op.register_variant(
                name,
                was.build,
                description=was.description,
                default_policy=was.default_policy,
                max_examples=was.max_examples,
                requires_gpu=was.requires_gpu,
                replace=True,
            )


@pytest.fixture(autouse=True)
def own_exporters():
    """Every model source a test registers is gone after it; one it replaced comes back."""
    from onnxparity.exporters import exporter_names, get_exporter, register_exporter, unregister_exporter

    before = {name: get_exporter(name) for name in exporter_names()}
    yield
    for name in exporter_names():
        if name not in before:
            unregister_exporter(name)
        elif get_exporter(name) is not before[name]:
            register_exporter(before[name], replace=True)
