"""Sigmoid: ``dX = g · y · (1 - y)``, relevance passes through (spec 4.5); never negative.
(As the gate of a Mul it receives no relevance: rules/mul.py, spec 4.8.)"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("Sigmoid")
class SigmoidRule(PassThrough):
    """``dX = g · y · (1 - y)``."""

    vjp_name = "g·y·(1-y)"
    traits = frozenset({"nonneg_output", "gate"})

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, y = ctx.em, node.outputs[0].name
        slope = em.op("Mul", [y, em.op("Sub", [em.const(1.0), y], "one_minus_y")], "dsig")
        return {0: em.op("Mul", [single(grad), slope], "sigmoid_vjp")}
