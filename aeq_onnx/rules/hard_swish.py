"""HardSwish ``y = x · hs(x)`` (opset 14+): ``dX = g · (hs(x) + x · hs'(x))``, relevance passes
through (spec 4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough, hard_sigmoid_slope


@register("HardSwish", since=14)
class HardSwishRule(PassThrough):
    """``y = x · hs(x)``, ``hs(x) = clip(x/6 + 1/2, 0, 1)``: ``dX = g · (hs(x) + x · hs'(x))``."""

    vjp_name = "g·(hs(x)+x·hs'(x))"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, x = ctx.em, node.inputs[0].name
        hs = em.op("HardSigmoid", [x], "hswish_hs", alpha=1.0 / 6.0, beta=0.5)
        slope = hard_sigmoid_slope(ctx, x, 1.0 / 6.0, 0.5)
        local = em.op("Add", [hs, em.op("Mul", [x, slope], "hswish_xs")], "dhswish")
        return {0: em.op("Mul", [single(grad), local], "hswish_vjp")}
