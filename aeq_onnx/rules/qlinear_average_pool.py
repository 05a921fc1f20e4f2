"""QLinearAveragePool (onnxruntime, com.microsoft): AveragePool of the dequantized input,
quantized; its rules (spec 4.6) over the float view (NCHW only)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.qlinear_global_average_pool import QLinearGlobalAveragePoolRule
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import StandIn, activation, stand_in


@register("QLinearAveragePool")
class QLinearAveragePoolRule(QLinearGlobalAveragePoolRule):
    """``Y = Q(avgpool(DQ(X)))``: AveragePool's VJP and z-rule, same window attributes."""

    traits = frozenset({"window_pool", "sign_keeping"})
    domains = frozenset({"com.microsoft"})

    float_op = "AveragePool"
    vjp_name = "depthwise ConvTranspose of g/divisor, straight-through at Q"

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        attrs = {k: v for k, v in node.attrs.items() if k != "channels_last"}
        return stand_in(node, self.float_op, [(activation(ctx, node, 0, "qavg_x"), 0)], attrs)
