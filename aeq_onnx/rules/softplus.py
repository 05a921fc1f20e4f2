"""Softplus ``y = log(1 + eˣ)``: ``dX = g · sigmoid(x)``, relevance passes through (spec 4.5);
never negative."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("Softplus")
class SoftplusRule(PassThrough):
    """``y = log(1 + eˣ)``: ``dX = g · sigmoid(x)``."""

    vjp_name = "g·sigmoid(x)"
    traits = frozenset({"nonneg_output"})

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        sig = ctx.em.op("Sigmoid", [node.inputs[0].name], "softplus_sig")
        return {0: ctx.em.op("Mul", [single(grad), sig], "softplus_vjp")}
