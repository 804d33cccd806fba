"""Declarations of what a model accepts and what parity means: validated, immutable values.

Knows nothing of frameworks, ONNX Runtime or pytest. Every constructor validates its
arguments and raises :class:`~onnxparity.errors.InvalidSpec` naming the bad value and the fix.
``inputs`` (Dim, Input), ``outputs`` (Output), ``policy`` (Tolerance, Agreement), ``budgets``
(Opset, Latency) and ``parity`` (ParitySpec, the whole declaration of one check).
"""

from onnxparity.spec.budgets import DEFAULT_DOMAINS, Latency, Opset
from onnxparity.spec.dtypes import DEFAULT_RANGES, SUPPORTED_DTYPES
from onnxparity.spec.inputs import Dim, Input
from onnxparity.spec.outputs import Output
from onnxparity.spec.parity import ParitySpec
from onnxparity.spec.policy import DEFAULT_TOLERANCE, Agreement, Policy, Tolerance

__all__ = [
    "DEFAULT_DOMAINS",
    "DEFAULT_RANGES",
    "DEFAULT_TOLERANCE",
    "SUPPORTED_DTYPES",
    "Agreement",
    "Dim",
    "Input",
    "Latency",
    "Opset",
    "Output",
    "ParitySpec",
    "Policy",
    "Tolerance",
]
