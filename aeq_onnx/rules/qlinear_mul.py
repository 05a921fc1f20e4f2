"""QLinearMul (onnxruntime, com.microsoft): the Mul of the dequantized operands, quantized;
rules of Mul (by a constant: pass-through; a gate: spec 4.8) over the float view."""

from __future__ import annotations

from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import JoinDelegating


@register("QLinearMul")
class QLinearMulRule(JoinDelegating):
    """``C = Q(DQ(A) · DQ(B))``: Mul's VJP and relevance, straight-through at Q."""

    traits = frozenset()
    domains = frozenset({"com.microsoft"})

    float_op = "Mul"
    vjp_name = "as Mul, straight-through at Q"
    relevance_name = "as Mul over the dequantized view (4.5, 4.8)"
