"""Expand (spec 4.9): every copy of an element sends its gradient and relevance back to it,
``dX = R_in = Σ`` over the broadcast axes. A constant expanded to the batch (ViT's class
token) carries no data and never reaches a chain; this rule is for data tensors."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


@register("Expand", since=8)
class ExpandRule(OpRule):
    """``y = expand(x, shape)``: the flow summed over the axes x was broadcast along."""

    data_inputs = (0,)
    vjp_name = "Σ over the broadcast axes"
    relevance_name = "Σ over the broadcast axes (4.9)"

    def _axes(self, ctx: EmitContext, node: gs.Node) -> list[int] | None:
        """Output axes along which x was broadcast (None: unknown)."""
        samples = ctx.samples()
        x, y = samples.layout(node.inputs[0].name), samples.layout(node.outputs[0].name)
        if x is None or y is None or len(x) > len(y):
            return None
        lead = len(y) - len(x)
        axes = list(range(lead))
        for i, d in enumerate(x):
            if d == y[lead + i]:
                continue
            if d != 1:
                return None
            axes.append(lead + i)
        return axes

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if self._axes(ctx, node) is None:
            return "Expand whose input and output shapes are not known"
        return None

    def _back(self, ctx: EmitContext, node: gs.Node, flow: str) -> str:
        em, x = ctx.em, node.inputs[0].name
        axes = self._axes(ctx, node) or []
        if axes:
            flow = em.op("ReduceSum", [flow, em.ints(axes, "axes")], "expand_sum", keepdims=1)
        return em.op("Reshape", [flow, em.op("Shape", [x], "x_shape")], "expand_back")

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: self._back(ctx, node, single(grad))}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {0: self._back(ctx, node, single(rel))}
