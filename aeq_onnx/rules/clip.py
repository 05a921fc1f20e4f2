"""Clip (ReLU6 and friends): ``dX = g · 1[min < x < max]``, relevance passes through (spec
4.5); never negative when its min is a constant >= 0."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.ir.graph import GraphView
from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


def _clip_bounds(ctx: EmitContext, node: gs.Node) -> tuple[float | None, float | None]:
    """Clip's min and max, from attributes (opset < 11) or constant inputs."""
    if ctx.view.opset < 11:
        return node.attrs.get("min"), node.attrs.get("max")
    bounds: list[float | None] = []
    for i in (1, 2):
        name = node.inputs[i].name if len(node.inputs) > i else ""
        bounds.append(float(ctx.view.constant(name)) if name else None)
    return bounds[0], bounds[1]


@register("Clip")
class ClipRule(PassThrough):
    """``dX = g · 1[min < x < max]`` (ReLU6 and friends)."""

    vjp_name = "g·1[min<x<max]"

    def node_traits(self, view: GraphView, node: gs.Node) -> frozenset[str]:
        """``nonneg_output`` when the min input is a constant >= 0."""
        low = node.inputs[1].name if len(node.inputs) > 1 else ""
        if low and view.is_constant(low) and float(view.constant(low)) >= 0:
            return frozenset({"nonneg_output"})
        return self.traits

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        extra = [t.name for t in node.inputs[1:] if t.name]
        if any(not ctx.view.is_constant(name) for name in extra):
            return "Clip bounds are not constants"
        return None

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, x, g = ctx.em, node.inputs[0].name, single(grad)
        low, high = _clip_bounds(ctx, node)
        if low is not None:
            g = em.op("Where", [em.op("Greater", [x, em.const(low)]), g, em.const(0.0)], "clip")
        if high is not None:
            g = em.op("Where", [em.op("Less", [x, em.const(high)]), g, em.const(0.0)], "clip")
        return {0: g}
