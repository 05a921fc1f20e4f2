"""LayerNormalization (ae-tokens T3): LRP-0 through the centring and scaling with the standard
deviation held constant; its exact VJP above the split.

With ``y = γ·(x - μ)/σ + β`` over the normalised axes (``axis`` to the last),
``σ = sqrt(var(x) + eps)``, and the per-sample stabiliser of :mod:`aeq_onnx.ir.per_sample`::

    s    = γ/σ · sdiv_ε(R, y)
    R_in = x · (s - mean(s))           (mean over the normalised axes; β absorbs its share)

This is LRP-0 of the map x -> γ(x - mean x)/σ + β with σ a constant (conservative
propagation, Ali et al. ICML 2022): ``Σ R_in = Σ (y - β)·sdiv_ε(R, y)``, the relevance minus
β's share. VJP: with ``x̂ = (x - μ)/σ`` and ``g' = g·γ``,
``dX = (g' - mean(g') - x̂·mean(g'·x̂)) / σ``. The decomposed pattern (ReduceMean, Sub, Pow,
ReduceMean, Add, Sqrt, Div, Mul γ, Add β) is fused into this op by
:mod:`aeq_onnx.converters.fuse_layernorm`.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.ir import per_sample
from aeq_onnx.ir.emit import Emitter
from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


def mean_over(em: Emitter, x: str, axes: list[int]) -> str:
    """ReduceMean over ``axes`` with keepdims (axes as attribute before opset 18)."""
    if em.opset >= 18:
        return em.op("ReduceMean", [x, em.ints(axes, "axes")], "mean", keepdims=1)
    return em.op("ReduceMean", [x], "mean", axes=axes, keepdims=1)


@register("LayerNormalization", since=17)
class LayerNormalizationRule(OpRule):
    """LayerNormalization with constant scale and bias: LRP-0 with σ constant; exact VJP."""

    data_inputs = (0,)
    vjp_name = "(g' - mean g' - x̂·mean(g'x̂))/σ"
    relevance_name = "LRP-0, σ held constant: x·(s - mean s), s = γ/σ·sdiv_ε(R, y)"
    traits = frozenset({"token"})

    def _axes(self, ctx: EmitContext, node: gs.Node) -> list[int]:
        rank = ctx.view.rank(node.inputs[0].name)
        return list(range(int(node.attrs.get("axis", -1)) % rank, rank))

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if any(not ctx.view.is_constant(t.name) for t in node.inputs[1:] if t.name):
            return "LayerNormalization scale/bias are not constants"
        if len(node.outputs) > 1 and any(t.name and ctx.view.consumers(t.name)
                                         for t in node.outputs[1:]):
            return "LayerNormalization whose mean or inverse deviation outputs are used"
        if need == "vjp":  # the exact VJP, whatever the forward mixes
            return None
        samples = ctx.samples()
        if any(samples.along_sample_axis(node.inputs[0].name, a)
               for a in self._axes(ctx, node)):
            return "LayerNormalization over the sample axis"
        return samples.reduction_problem(node.outputs[0].name)

    def _scale(self, ctx: EmitContext, node: gs.Node) -> tuple[str, str]:
        """``(1/σ, x̂)`` of the node's own input."""
        em, x = ctx.em, node.inputs[0].name
        axes = self._axes(ctx, node)
        eps = float(node.attrs.get("epsilon", 1e-5))
        centred = em.op("Sub", [x, mean_over(em, x, axes)], "ln_centred")
        var = mean_over(em, em.op("Mul", [centred, centred], "ln_sq"), axes)
        inv = em.op("Reciprocal", [em.op("Sqrt", [em.op("Add", [var, em.const(eps)],
                                                        "ln_var_eps")], "ln_sigma")], "ln_inv")
        return inv, em.op("Mul", [centred, inv], "ln_xhat")

    def _gamma(self, ctx: EmitContext, node: gs.Node, g: str) -> str:
        """``g·γ`` (γ broadcast over the normalised axes)."""
        return ctx.em.op("Mul", [g, node.inputs[1].name], "ln_g_gamma")

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, axes = ctx.em, self._axes(ctx, node)
        inv, xhat = self._scale(ctx, node)
        gg = self._gamma(ctx, node, single(grad))
        proj = em.op("Mul", [xhat, mean_over(em, em.op("Mul", [gg, xhat], "ln_gx"), axes)],
                     "ln_proj")
        inner = em.op("Sub", [em.op("Sub", [gg, mean_over(em, gg, axes)], "ln_gc"), proj])
        return {0: em.op("Mul", [inner, inv], "ln_vjp")}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        em, x, y = ctx.em, node.inputs[0].name, node.outputs[0].name
        samples = ctx.samples()
        layout = samples.layout(y)
        assert layout is not None
        ratio = per_sample.sdiv_eps(em, single(rel), y, layout, samples.single_sample())
        inv, _ = self._scale(ctx, node)
        s = em.op("Mul", [self._gamma(ctx, node, ratio), inv], "ln_s")
        centred = em.op("Sub", [s, mean_over(em, s, self._axes(ctx, node))], "ln_s_centred")
        return {0: em.op("Mul", [x, centred], "ln_R_in")}

