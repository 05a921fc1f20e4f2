"""Erf: ``dX = g · 2/√π · exp(-x²)``; supported above the split only."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


@register("Erf")
class ErfRule(OpRule):
    """``y = erf(x)``: ``dX = g · 2/√π · exp(-x²)``. VJP only: exporters write Gelu as
    ``x · 0.5 · (1 + erf(x/√2))``, a Mul of two tensors without a gate, which has no relevance
    rule anyway; above the split the subgraph's VJPs compose exactly."""

    data_inputs = (0,)
    vjp_name = "g·2/√π·exp(-x²)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, x = ctx.em, node.inputs[0].name
        bell = em.op("Exp", [em.op("Neg", [em.op("Mul", [x, x], "x2")], "minus_x2")], "erf_e")
        local = em.op("Mul", [bell, em.const(float(2 / np.sqrt(np.pi)))], "derf")
        return {0: em.op("Mul", [single(grad), local], "erf_vjp")}
