"""QLinearConcat (onnxruntime, com.microsoft): ``(Y_s, Y_zp, X1, X1_s, X1_zp, ...)``, the
Concat of the dequantized inputs, quantized; Concat's rules (spec 4.9) over the float view."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import Delegating, StandIn, activation, stand_in


@register("QLinearConcat")
class QLinearConcatRule(Delegating):
    """``Y = Q(concat(DQ(X1), DQ(X2), ...))``: split back along the axis."""

    traits = frozenset({"sign_keeping"})
    domains = frozenset({"com.microsoft"})

    float_op = "Concat"
    vjp_name = "split along the axis, straight-through at Q"
    relevance_name = "split along the axis (4.9)"

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        parts = [(activation(ctx, node, i, "qconcat_x"), i)
                 for i in range(2, len(node.inputs) - 2, 3)]
        return stand_in(node, "Concat", parts, {"axis": int(node.attrs["axis"])})
