"""Activations and normalisations: exact VJPs; relevance passes through unchanged (spec 4.5)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


class PassThrough(OpRule):
    """``R_in = R`` on the data input (spec 4.5); subclasses give the VJP."""

    data_inputs = (0,)
    relevance_name = "pass-through (4.5)"

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {0: single(rel)}


@register("Identity", "Dropout")
class IdentityRule(PassThrough):
    """Identity and inference-mode Dropout: ``dX = g``."""

    vjp_name = "identity"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: single(grad)}


@register("Cast")
class CastRule(IdentityRule):
    """Cast between float types: ``dX = g``."""


@register("Relu")
class ReluRule(PassThrough):
    """``dX = g · 1[x > 0]``."""

    vjp_name = "g·1[x>0]"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em = ctx.em
        positive = em.op("Greater", [node.inputs[0].name, em.const(0.0)], "relu_gt0")
        return {0: em.op("Where", [positive, single(grad), em.const(0.0)], "relu_vjp")}


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


@register("LeakyRelu")
class LeakyReluRule(PassThrough):
    """``dX = g`` where x > 0, ``alpha · g`` elsewhere."""

    vjp_name = "g·(x>0 ? 1 : alpha)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, g = ctx.em, single(grad)
        alpha = float(node.attrs.get("alpha", 0.01))
        positive = em.op("Greater", [node.inputs[0].name, em.const(0.0)], "lrelu_gt0")
        scaled = em.op("Mul", [g, em.const(alpha)], "lrelu_scaled")
        return {0: em.op("Where", [positive, g, scaled], "lrelu_vjp")}


@register("Sigmoid")
class SigmoidRule(PassThrough):
    """``dX = g · y · (1 - y)``."""

    vjp_name = "g·y·(1-y)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, y = ctx.em, node.outputs[0].name
        slope = em.op("Mul", [y, em.op("Sub", [em.const(1.0), y], "one_minus_y")], "dsig")
        return {0: em.op("Mul", [single(grad), slope], "sigmoid_vjp")}


@register("Tanh")
class TanhRule(PassThrough):
    """``dX = g · (1 - y²)``."""

    vjp_name = "g·(1-y²)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, y = ctx.em, node.outputs[0].name
        slope = em.op("Sub", [em.const(1.0), em.op("Mul", [y, y], "y2")], "dtanh")
        return {0: em.op("Mul", [single(grad), slope], "tanh_vjp")}


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
