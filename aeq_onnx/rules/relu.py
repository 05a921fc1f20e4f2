"""Relu: ``dX = g · 1[x > 0]``, relevance passes through (spec 4.5); never negative."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("Relu")
class ReluRule(PassThrough):
    """``dX = g · 1[x > 0]``, the mask read from ``y = relu(x)`` (``y > 0`` exactly where
    ``x > 0``): x keeps one reader, so onnxruntime can fuse the Conv before it with the Relu
    (fewer nodes and a lower peak, same values: docs/performance.md, "The explainer's
    schedule")."""

    vjp_name = "g·1[x>0]"
    traits = frozenset({"nonneg_output"})

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em = ctx.em
        positive = em.op("Greater", [node.outputs[0].name, em.const(0.0)], "relu_gt0")
        return {0: em.op("Where", [positive, single(grad), em.const(0.0)], "relu_vjp")}
