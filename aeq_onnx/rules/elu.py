"""Elu: ``dX = g · (x > 0 ? 1 : y + α)``, relevance passes through (spec 4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough, where_positive


@register("Elu")
class EluRule(PassThrough):
    """``y = x > 0 ? x : α(eˣ-1)``: ``dX = g · (x > 0 ? 1 : y + α)``."""

    vjp_name = "g·(x>0 ? 1 : y+α)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, alpha = ctx.em, float(node.attrs.get("alpha", 1.0))
        low = em.op("Add", [node.outputs[0].name, em.const(alpha)], "elu_low")
        local = where_positive(ctx, node.inputs[0].name, em.const(1.0), low, "delu")
        return {0: em.op("Mul", [single(grad), local], "elu_vjp")}
