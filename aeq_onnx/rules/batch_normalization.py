"""Inference BatchNormalization (one the converters could not fold into a Conv): ``dX = g ·
scale / sqrt(var + eps)`` per channel, relevance passes through (spec 4.5)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("BatchNormalization")
class BatchNormRule(PassThrough):
    """Inference BatchNormalization: ``dX = g · scale / sqrt(var + eps)`` per channel."""

    vjp_name = "g·scale/sqrt(var+eps)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if any(not ctx.view.is_constant(t.name) for t in node.inputs[1:5]):
            return "BatchNormalization parameters are not constants"
        return None

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        scale, _, _, var = (ctx.view.constant(t.name) for t in node.inputs[1:5])
        eps = float(node.attrs.get("epsilon", 1e-5))
        factor = (scale / np.sqrt(var + eps)).astype(np.float32)
        rank = ctx.view.rank(node.inputs[0].name)
        factor = factor.reshape((1, -1) + (1,) * (rank - 2))
        return {0: ctx.em.op("Mul", [single(grad), ctx.em.const(factor, "bn_factor")], "bn_vjp")}
