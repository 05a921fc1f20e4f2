"""Tanh: ``dX = g · (1 - y²)``, relevance passes through (spec 4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("Tanh")
class TanhRule(PassThrough):
    """``dX = g · (1 - y²)``."""

    vjp_name = "g·(1-y²)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, y = ctx.em, node.outputs[0].name
        slope = em.op("Sub", [em.const(1.0), em.op("Mul", [y, y], "y2")], "dtanh")
        return {0: em.op("Mul", [single(grad), slope], "tanh_vjp")}
