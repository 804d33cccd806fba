"""Shared fixtures: one ParitySession for the whole self-test run, so each model exports once."""

from __future__ import annotations

import pytest

from onnxparity.runner import ParitySession


@pytest.fixture(scope="session")
def parity_session(tmp_path_factory: pytest.TempPathFactory):
    with ParitySession(reproducer_dir=tmp_path_factory.mktemp("reproducers")) as session:
        yield session
