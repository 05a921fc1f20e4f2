"""DequantizeLinear of a quantized activation: the identity in the float view (its input is
read as the very value it outputs, docs/deployed.md); gradient and relevance pass through. A
DequantizeLinear of constants is a weight: the view reads it as a float32 constant."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


@register("DequantizeLinear", since=10)
class DequantizeLinearRule(OpRule):
    """``y = (q - zero_point) · scale``, the float view of q itself: ``dX = g``, ``R_in = R``."""

    traits = frozenset({"quantization", "dequantize", "sign_keeping"})
    domains = frozenset({"com.microsoft"})

    data_inputs = (0,)
    vjp_name = "identity (q is read as y)"
    relevance_name = "pass-through (4.5)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: single(grad)}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {0: single(rel)}
