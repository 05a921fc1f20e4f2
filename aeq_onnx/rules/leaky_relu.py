"""LeakyRelu: ``dX = g`` where x > 0, ``alpha · g`` elsewhere; relevance passes through (4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("LeakyRelu")
class LeakyReluRule(PassThrough):
    """``dX = g`` where x > 0, ``alpha · g`` elsewhere."""

    vjp_name = "g·(x>0 ? 1 : alpha)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, g = ctx.em, single(grad)
        alpha = float(node.attrs.get("alpha", 0.01))
        positive = em.op("Greater", [node.inputs[0].name, em.const(0.0)], "lrelu_gt0")
        scaled = em.op("Mul", [g, em.const(alpha)], "lrelu_scaled")
        return {0: em.op("Where", [positive, g, scaled], "lrelu_vjp")}
