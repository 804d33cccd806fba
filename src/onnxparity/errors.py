"""Exceptions onnxparity raises: each names what was wrong and how to fix it."""

from __future__ import annotations


class OnnxParityError(Exception):
    """Base class of every error onnxparity raises on purpose."""


class InvalidSpec(OnnxParityError, ValueError):
    """A declaration (Input, Dim, Tolerance, marker argument) is invalid."""


class ExportError(OnnxParityError):
    """The framework model could not be exported to ONNX, or is not fit to export."""


class FrameworkNotInstalled(OnnxParityError, ImportError):
    """A model needs a framework (or converter) that is not installed."""

    def __init__(self, framework: str, extra: str, detail: str = "") -> None:
        self.framework = framework
        self.extra = extra
        msg = f"{framework} is not installed: pip install 'onnxparity[{extra}]'"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class NoMapping(OnnxParityError):
    """A model source cannot map the framework's intermediate values to the ONNX graph's (the
    message says why): a failure is then not localized, and the diagnosis says so."""


class VariantUnavailable(OnnxParityError):
    """A variant cannot run on this machine (e.g. no GPU); reported as a skip."""


class VariantBuildError(OnnxParityError):
    """A variant could not be built from the ONNX model (session creation, quantization...)."""


class ReferenceCannotRun(OnnxParityError):
    """A reference that is not the model's own code (the ONNX reference evaluator of
    ``onnxparity check``) raised: where the variant runs the same input, the item is an error
    saying so, not a failure of the model."""


class ParityFailure(OnnxParityError, AssertionError):
    """A variant's outputs differ from the reference beyond tolerance; the message is the diagnosis."""


class WeakCheck(UserWarning):
    """A passing check that could not have failed (outputs far inside the tolerance band, or not
    depending on the inputs): the pass proves little. Make it an error with
    ``-W error::onnxparity.WeakCheck``."""
