"""QLinearGlobalAveragePool (onnxruntime, com.microsoft): GlobalAveragePool of the dequantized
input, quantized; its rules (spec 4.6) over the float view (NCHW only)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import Delegating, StandIn, activation, stand_in


@register("QLinearGlobalAveragePool")
class QLinearGlobalAveragePoolRule(Delegating):
    """``Y = Q(mean_hw(DQ(X)))``: GlobalAveragePool's VJP and z-rule."""

    traits = frozenset({"sign_keeping"})
    domains = frozenset({"com.microsoft"})

    float_op = "GlobalAveragePool"
    data_inputs = (0,)
    vjp_name = "expand(g)/HW, straight-through at Q"
    relevance_name = "z-rule on x+ (4.6)"

    def own_problem(self, ctx: EmitContext, node: gs.Node) -> str | None:
        if int(node.attrs.get("channels_last", 0)):
            return f"{node.op} with channels_last=1"
        return None

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        return stand_in(node, self.float_op, [(activation(ctx, node, 0, "qgap_x"), 0)])
