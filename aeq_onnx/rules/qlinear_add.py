"""QLinearAdd (onnxruntime, com.microsoft): the Add of the dequantized operands, quantized;
rules of Add (a bias: pass-through; a join: spec 4.7) over the float view."""

from __future__ import annotations

from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import JoinDelegating


@register("QLinearAdd")
class QLinearAddRule(JoinDelegating):
    """``C = Q(DQ(A) + DQ(B))``: Add's VJP and relevance, straight-through at Q."""

    traits = frozenset()
    domains = frozenset({"com.microsoft"})

    float_op = "Add"
    vjp_name = "as Add, straight-through at Q"
    relevance_name = "as Add over the dequantized view (4.7)"
