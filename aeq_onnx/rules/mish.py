"""Mish ``y = x · tanh(softplus(x))`` (opset 18+): exact VJP, relevance passes through (4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("Mish", since=18)
class MishRule(PassThrough):
    """``y = x · tanh(softplus(x))``, ``t = tanh(softplus(x))``:
    ``dX = g · (t + x · (1 - t²) · sigmoid(x))``."""

    vjp_name = "g·(t+x·(1-t²)·sigmoid(x))"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, x = ctx.em, node.inputs[0].name
        t = em.op("Tanh", [em.op("Softplus", [x], "mish_sp")], "mish_t")
        sech2 = em.op("Sub", [em.const(1.0), em.op("Mul", [t, t])], "mish_sech2")
        rest = em.op("Mul", [em.op("Mul", [x, sech2]), em.op("Sigmoid", [x])], "mish_rest")
        return {0: em.op("Mul", [single(grad), em.op("Add", [t, rest], "dmish")], "mish_vjp")}
