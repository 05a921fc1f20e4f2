"""HardSigmoid ``y = clip(αx+β, 0, 1)``: ``dX = g · α · 1[0 < αx+β < 1]``, relevance passes
through (spec 4.5); never negative. (As the gate of a Mul it receives no relevance: 4.8.)"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough, hard_sigmoid_slope


@register("HardSigmoid")
class HardSigmoidRule(PassThrough):
    """``y = clip(αx+β, 0, 1)``: ``dX = g · α · 1[0 < αx+β < 1]``."""

    vjp_name = "g·α·1[0<αx+β<1]"
    traits = frozenset({"nonneg_output", "gate"})

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        alpha, beta = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
        slope = hard_sigmoid_slope(ctx, node.inputs[0].name, alpha, beta)
        return {0: ctx.em.op("Mul", [single(grad), slope], "hsig_vjp")}
