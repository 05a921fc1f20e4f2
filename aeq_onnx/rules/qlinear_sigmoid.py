"""QLinearSigmoid (onnxruntime, com.microsoft): Sigmoid of the dequantized input, quantized;
pass-through relevance (spec 4.5), ``g·y·(1-y)`` with y read dequantized."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import Delegating, StandIn, activation, stand_in


@register("QLinearSigmoid")
class QLinearSigmoidRule(Delegating):
    """``Y = Q(sigmoid(DQ(X)))``."""

    traits = frozenset({"nonneg_output", "gate"})
    domains = frozenset({"com.microsoft"})

    float_op = "Sigmoid"
    data_inputs = (0,)
    vjp_name = "g·y·(1-y), straight-through at Q"
    relevance_name = "pass-through (4.5)"

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        attrs = {k: v for k, v in node.attrs.items() if k == "alpha"}
        return stand_in(node, self.float_op, [(activation(ctx, node, 0, "qact_x"), 0)], attrs)
