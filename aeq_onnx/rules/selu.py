"""Selu: ``dX = g · (x > 0 ? γ : y + γα)``, relevance passes through (spec 4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough, where_positive

SELU_ALPHA = 1.67326319217681884765625
SELU_GAMMA = 1.05070102214813232421875


@register("Selu")
class SeluRule(PassThrough):
    """``y = γ · (x > 0 ? x : α(eˣ-1))``: ``dX = g · (x > 0 ? γ : y + γα)``."""

    vjp_name = "g·(x>0 ? γ : y+γα)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em = ctx.em
        alpha = float(node.attrs.get("alpha", SELU_ALPHA))
        gamma = float(node.attrs.get("gamma", SELU_GAMMA))
        low = em.op("Add", [node.outputs[0].name, em.const(alpha * gamma)], "selu_low")
        local = where_positive(ctx, node.inputs[0].name, em.const(gamma), low, "dselu")
        return {0: em.op("Mul", [single(grad), local], "selu_vjp")}
