"""Neg: ``dX = −g``; relevance passes through (spec 4.5, as for a Mul by the constant −1)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("Neg")
class NegRule(PassThrough):
    """``y = −x``: ``dX = −g``, ``R_in = R`` (a scaling by a constant, 4.5). Keras 3's exact
    GELU reaches ONNX as ``0.5·x·erfc(−x/√2)``: its gate starts with a Neg of the signal."""

    vjp_name = "−g"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: ctx.em.op("Neg", [single(grad)], "neg_vjp")}
