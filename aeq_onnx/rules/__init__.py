"""Op rules: one module per op family, each rule registered by ONNX op type and opset range."""

from aeq_onnx.rules import (
    activation,
    conv,
    elementwise,
    gating,
    linear,
    lrn,
    merge,
    pooling,
    reduce_sum,
    shape,
)
from aeq_onnx.rules.registry import entries, lookup, supported_ops

__all__ = [
    "activation",
    "conv",
    "elementwise",
    "entries",
    "gating",
    "linear",
    "lookup",
    "lrn",
    "merge",
    "pooling",
    "reduce_sum",
    "shape",
    "supported_ops",
]
