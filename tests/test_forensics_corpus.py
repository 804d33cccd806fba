"""The forensics corpus (issue 27: a named node is the node that went wrong): planted export bugs
across frameworks — TorchScript CNNs with BatchNorm folded into their convolutions, functional
ops followed by a module a wrong localizer would blame, removed epsilons that make NaN, a
decomposed LayerNorm, Keras convolutions with a fused activation and channels-last values,
pooling and Dense layers, a subclassed model, scikit-learn pipeline steps — each checked as a
prebuilt file against its model. The first divergence must name the planted node, hold it in a
span of at most ten nodes, or name its module; it must never name an innocent node.

Before issue 27 the same corpus named 41 of 53 and an innocent node in 12 (benchmarks/
forensics_corpus.py prints the table)."""

from __future__ import annotations

import pytest

from forensics_corpus import FRAMEWORKS, SPAN_LIMIT, cases, run

CASES = {case.name: case for framework in FRAMEWORKS for case in cases((framework,))}


@pytest.fixture(scope="module")
def corpus_session(tmp_path_factory):
    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession

    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path_factory.mktemp("corpus")))) as session:
        yield session, str(tmp_path_factory.mktemp("exports"))


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("name", list(CASES))
def test_the_planted_node_is_named_and_no_innocent_one(corpus_session, name):
    session, folder = corpus_session
    outcome = run(CASES[name], session, folder)
    assert outcome.status == "failed", outcome.message
    assert outcome.verdict in ("named", "in span", "module"), (outcome.verdict, outcome.line, outcome.planted)
    found = outcome.divergence
    if found.span:  # a span is named as one, never as its last node with "inputs agree"
        assert outcome.line.startswith("first divergence: between ") and len(found.nodes) <= SPAN_LIMIT
        assert "inputs agree" not in outcome.line
    else:
        assert outcome.line.startswith(f"first divergence: {found.op_type} {found.node!r}")
