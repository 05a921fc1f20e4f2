"""Sub with a constant operand (a bias, input normalisation): ``dX = ±g``, relevance passes
through to the data operand (spec 4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.elementwise import WithConstant


@register("Sub")
class SubRule(WithConstant):
    """``x - c``: ``dX = g``; ``c - x``: ``dX = -g``."""

    vjp_name = "±g"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        index = ctx.view.variable_inputs(node)[0]
        g = single(grad)
        return {index: g if index == 0 else ctx.em.op("Neg", [g], "sub_vjp")}
