"""Div of the data by a constant (a scaling, input normalisation): ``dX = g / c``, relevance
passes through (spec 4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.elementwise import WithConstant, constant_operand_problem


@register("Div")
class DivRule(WithConstant):
    """``x / c``: ``dX = g / c`` (a constant divided by the data is not supported)."""

    vjp_name = "g/c"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        problem = constant_operand_problem(ctx, node)
        if problem is None and ctx.view.variable_inputs(node)[0] != 0:
            return "Div of a constant by the data"
        return problem

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: ctx.em.op("Div", [single(grad), node.inputs[1].name], "div_vjp")}
