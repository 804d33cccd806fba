"""Shared fixtures: one ParitySession for the whole self-test run, so each model exports once."""

from __future__ import annotations

import pytest

from onnxparity.runner import ParitySession


@pytest.fixture(scope="session")
def parity_session(tmp_path_factory: pytest.TempPathFactory):
    with ParitySession(reproducer_dir=tmp_path_factory.mktemp("reproducers")) as session:
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
