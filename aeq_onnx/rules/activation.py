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
    """``dX = g · 1[x > 0]``, the mask read from ``y = relu(x)`` (``y > 0`` exactly where
    ``x > 0``): x keeps one reader, so onnxruntime can fuse the Conv before it with the Relu
    (fewer nodes and a lower peak, same values: docs/performance.md, "The explainer's
    schedule")."""

    vjp_name = "g·1[x>0]"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em = ctx.em
        positive = em.op("Greater", [node.outputs[0].name, em.const(0.0)], "relu_gt0")
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


def _where_positive(ctx: EmitContext, x: str, pos: str, neg: str, hint: str) -> str:
    """``x > 0 ? pos : neg``."""
    em = ctx.em
    return em.op("Where", [em.op("Greater", [x, em.const(0.0)], f"{hint}_gt0"), pos, neg], hint)


def _hard_sigmoid_slope(ctx: EmitContext, x: str, alpha: float, beta: float) -> str:
    """``alpha · 1[0 < alpha·x + beta < 1]`` (the derivative of HardSigmoid)."""
    em = ctx.em
    lin = em.op("Add", [em.op("Mul", [x, em.const(alpha)], "hs_ax"), em.const(beta)], "hs_lin")
    inside = em.op("And", [em.op("Greater", [lin, em.const(0.0)], "hs_gt0"),
                           em.op("Less", [lin, em.const(1.0)], "hs_lt1")], "hs_inside")
    return em.op("Where", [inside, em.const(alpha), em.const(0.0)], "hs_slope")


@register("HardSigmoid")
class HardSigmoidRule(PassThrough):
    """``y = clip(αx+β, 0, 1)``: ``dX = g · α · 1[0 < αx+β < 1]``."""

    vjp_name = "g·α·1[0<αx+β<1]"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        alpha, beta = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
        slope = _hard_sigmoid_slope(ctx, node.inputs[0].name, alpha, beta)
        return {0: ctx.em.op("Mul", [single(grad), slope], "hsig_vjp")}


@register("HardSwish", since=14)
class HardSwishRule(PassThrough):
    """``y = x · hs(x)``, ``hs(x) = clip(x/6 + 1/2, 0, 1)``: ``dX = g · (hs(x) + x · hs'(x))``."""

    vjp_name = "g·(hs(x)+x·hs'(x))"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, x = ctx.em, node.inputs[0].name
        hs = em.op("HardSigmoid", [x], "hswish_hs", alpha=1.0 / 6.0, beta=0.5)
        slope = _hard_sigmoid_slope(ctx, x, 1.0 / 6.0, 0.5)
        local = em.op("Add", [hs, em.op("Mul", [x, slope], "hswish_xs")], "dhswish")
        return {0: em.op("Mul", [single(grad), local], "hswish_vjp")}


@register("PRelu")
class PReluRule(PassThrough):
    """``y = x > 0 ? x : slope·x`` (constant slope, broadcast): ``dX = x > 0 ? g : slope·g``."""

    vjp_name = "g·(x>0 ? 1 : slope)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if not ctx.view.is_constant(node.inputs[1].name):
            return "PRelu slope is not a constant"
        return None

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        g = single(grad)
        scaled = ctx.em.op("Mul", [g, node.inputs[1].name], "prelu_scaled")
        return {0: _where_positive(ctx, node.inputs[0].name, g, scaled, "prelu_vjp")}


@register("Elu")
class EluRule(PassThrough):
    """``y = x > 0 ? x : α(eˣ-1)``: ``dX = g · (x > 0 ? 1 : y + α)``."""

    vjp_name = "g·(x>0 ? 1 : y+α)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, alpha = ctx.em, float(node.attrs.get("alpha", 1.0))
        low = em.op("Add", [node.outputs[0].name, em.const(alpha)], "elu_low")
        local = _where_positive(ctx, node.inputs[0].name, em.const(1.0), low, "delu")
        return {0: em.op("Mul", [single(grad), local], "elu_vjp")}


SELU_ALPHA = 1.67326319217681884765625
SELU_GAMMA = 1.05070102214813232421875


@register("Selu")
class SeluRule(PassThrough):
    """``y = γ · (x > 0 ? x : α(eˣ-1))``: ``dX = g · (x > 0 ? γ : y + γα)``."""

    vjp_name = "g·(x>0 ? γ : y+γα)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em = ctx.em
        alpha = float(node.attrs.get("alpha", SELU_ALPHA))
        gamma = float(node.attrs.get("gamma", SELU_GAMMA))
        low = em.op("Add", [node.outputs[0].name, em.const(alpha * gamma)], "selu_low")
        local = _where_positive(ctx, node.inputs[0].name, em.const(gamma), low, "dselu")
        return {0: em.op("Mul", [single(grad), local], "selu_vjp")}


GELU_K = 0.044715


@register("Gelu", since=20)
class GeluRule(PassThrough):
    """Exact: ``dX = g · (Φ(x) + x·φ(x))``; tanh approximation with ``u = √(2/π)(x + kx³)``,
    ``t = tanh(u)``: ``dX = g · (½(1+t) + ½x(1-t²)·√(2/π)(1+3kx²))``."""

    vjp_name = "g·(Φ(x)+x·φ(x))"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        approx = node.attrs.get("approximate", "none")
        approx = approx.decode() if isinstance(approx, bytes) else approx
        slope = self._tanh_slope if approx == "tanh" else self._erf_slope
        local = slope(ctx, node.inputs[0].name)
        return {0: ctx.em.op("Mul", [single(grad), local], "gelu_vjp")}

    @staticmethod
    def _erf_slope(ctx: EmitContext, x: str) -> str:
        em = ctx.em
        erf = em.op("Erf", [em.op("Mul", [x, em.const(float(1 / np.sqrt(2)))], "x_rt2")], "erf")
        cdf = em.op("Mul", [em.op("Add", [erf, em.const(1.0)]), em.const(0.5)], "gelu_cdf")
        x2 = em.op("Mul", [x, x], "x2")
        pdf = em.op("Mul", [em.op("Exp", [em.op("Mul", [x2, em.const(-0.5)])], "gelu_e"),
                            em.const(float(1 / np.sqrt(2 * np.pi)))], "gelu_pdf")
        return em.op("Add", [cdf, em.op("Mul", [x, pdf], "x_pdf")], "dgelu")

    @staticmethod
    def _tanh_slope(ctx: EmitContext, x: str) -> str:
        em, c = ctx.em, float(np.sqrt(2 / np.pi))
        x2 = em.op("Mul", [x, x], "x2")
        inner = em.op("Add", [em.const(1.0), em.op("Mul", [x2, em.const(GELU_K)])], "gelu_in")
        t = em.op("Tanh", [em.op("Mul", [em.op("Mul", [x, inner]), em.const(c)], "gelu_u")])
        half = em.op("Mul", [em.op("Add", [t, em.const(1.0)]), em.const(0.5)], "gelu_half")
        sech2 = em.op("Sub", [em.const(1.0), em.op("Mul", [t, t])], "gelu_sech2")
        du = em.op("Mul", [em.op("Add", [em.const(1.0),
                                         em.op("Mul", [x2, em.const(3 * GELU_K)])]),
                           em.const(c)], "gelu_du")
        rest = em.op("Mul", [em.op("Mul", [x, sech2]), em.op("Mul", [du, em.const(0.5)])])
        return em.op("Add", [half, rest], "dgelu")


@register("Softplus")
class SoftplusRule(PassThrough):
    """``y = log(1 + eˣ)``: ``dX = g · sigmoid(x)``."""

    vjp_name = "g·sigmoid(x)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        sig = ctx.em.op("Sigmoid", [node.inputs[0].name], "softplus_sig")
        return {0: ctx.em.op("Mul", [single(grad), sig], "softplus_vjp")}


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


@register("InstanceNormalization")
class InstanceNormRule(PassThrough):
    """InstanceNormalization with constant scale and bias: relevance passes through (4.5).

    Its VJP (through the per-sample, per-channel mean and variance) is not emitted: the op
    is supported below the split only."""

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if any(not ctx.view.is_constant(t.name) for t in node.inputs[1:3]):
            return "InstanceNormalization scale/bias are not constants"
        if need == "vjp":
            return "no VJP for InstanceNormalization (supported below the split only)"
        return None


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


@register("Pow")
class PowRule(OpRule):
    """``y = x^p`` with a constant scalar exponent: ``dX = g · p · x^(p-1)``. VJP only (the
    cube of the tanh-Gelu subgraph)."""

    data_inputs = (0,)
    vjp_name = "g·p·x^(p-1)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        name = node.inputs[1].name
        if not ctx.view.is_constant(name) or ctx.view.constant(name).size != 1:
            return "Pow with a non-constant or non-scalar exponent"
        return super().check(ctx, node, need)

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, x = ctx.em, node.inputs[0].name
        p = float(ctx.view.constant(node.inputs[1].name).reshape(-1)[0])
        local = em.op("Mul", [em.op("Pow", [x, em.const(p - 1.0)], "pow_lower"), em.const(p)])
        return {0: em.op("Mul", [single(grad), local], "pow_vjp")}
