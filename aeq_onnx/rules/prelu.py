"""PRelu with a constant slope: ``dX = x > 0 ? g : slope·g``, relevance passes through (4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough, where_positive


@register("PRelu")
class PReluRule(PassThrough):
    """``y = x > 0 ? x : slope·x`` (constant slope, broadcast): ``dX = x > 0 ? g : slope·g``."""

    vjp_name = "g·(x>0 ? 1 : slope)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if not ctx.view.is_constant(node.inputs[1].name):
            return "PRelu slope is not a constant"
        return None

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        g = single(grad)
        scaled = ctx.em.op("Mul", [g, node.inputs[1].name], "prelu_scaled")
        return {0: where_positive(ctx, node.inputs[0].name, g, scaled, "prelu_vjp")}
