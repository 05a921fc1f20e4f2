"""QLinearLeakyRelu (onnxruntime, com.microsoft): LeakyRelu of the dequantized input,
quantized; pass-through relevance (spec 4.5), LeakyRelu's VJP."""

from __future__ import annotations

from aeq_onnx.rules.qlinear_sigmoid import QLinearSigmoidRule
from aeq_onnx.rules.registry import register


@register("QLinearLeakyRelu")
class QLinearLeakyReluRule(QLinearSigmoidRule):
    """``Y = Q(leaky_relu(DQ(X), alpha))``."""

    traits = frozenset()
    domains = frozenset({"com.microsoft"})

    float_op = "LeakyRelu"
    vjp_name = "g·(x>0 ? 1 : alpha), straight-through at Q"
