"""Op rules: one module per op family, each rule registered by ONNX op type and opset range."""

from aeq_onnx.rules import (
    activation,
    conv,
    elementwise,
    expand,
    gather,
    gating,
    layer_normalization,
    linear,
    merge,
    pooling,
    shape,
    shape_of,
    softmax,
)
from aeq_onnx.rules.registry import entries, lookup, supported_ops

__all__ = [
    "activation",
    "conv",
    "elementwise",
    "entries",
    "expand",
    "gather",
    "gating",
    "layer_normalization",
    "linear",
    "lookup",
    "merge",
    "pooling",
    "shape",
    "shape_of",
    "softmax",
    "supported_ops",
]
