"""Pow with a constant scalar exponent: ``dX = g · p · x^(p-1)``; above the split only."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


@register("Pow")
class PowRule(OpRule):
    """``y = x^p`` with a constant scalar exponent: ``dX = g · p · x^(p-1)``. VJP only (the
    cube of the tanh-Gelu subgraph)."""

    data_inputs = (0,)
    vjp_name = "g·p·x^(p-1)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        name = node.inputs[1].name
        if not ctx.view.is_constant(name) or ctx.view.constant(name).size != 1:
            return "Pow with a non-constant or non-scalar exponent"
        return super().check(ctx, node, need)

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, x = ctx.em, node.inputs[0].name
        p = float(ctx.view.constant(node.inputs[1].name).reshape(-1)[0])
        local = em.op("Mul", [em.op("Pow", [x, em.const(p - 1.0)], "pow_lower"), em.const(p)])
        return {0: em.op("Mul", [single(grad), local], "pow_vjp")}
