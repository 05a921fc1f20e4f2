"""Attribution Equilibrium (Nam & Lee, "Illuminating Salient Contributions in Neuron Activation
with Attribution Equilibrium", IEEE T-PAMI 2024).

The gradient of the target logit flows back from the logits to the split tensor ``A`` (the
*head*); ``R0 = A · mean_hw(∂ logit_t / ∂ A)``, normalised by ``|Σ R0|`` per sample (spec
section 3), then flows to the pixels through the relevance rules of the *body*: the bounded
z^B rule at the input layer (4.3), the pointwise rule for 1x1 kernels and dense layers
(4.2, 4.4), the equilibrium rule with ratio ``r`` elsewhere (4.1), and the ``add_rule`` where
two tensors join (4.7). ``contrast`` changes the objective whose gradient defines ``R0``
(:mod:`aeq_onnx.methods.contrast`; default the paper's target logit).
"""

from __future__ import annotations

from typing import cast

import numpy as np

from aeq_onnx.errors import AeqError
from aeq_onnx.ir import emit
from aeq_onnx.ir.planning import Plan
from aeq_onnx.methods import chains
from aeq_onnx.methods import contrast as seeding
from aeq_onnx.methods.base import Method, Needs, Param, register_method
from aeq_onnx.rules.base import EmitContext, JoinRule, LayerRule


def initial_relevance(ctx: EmitContext, split: str, grad: str) -> str:
    """``R0 = A · mean_hw(g)``, then ``R0 / |Σ R0|`` per sample (spec section 3)."""
    em, rank = ctx.em, ctx.view.rank(split)
    weights = grad
    if rank > 2:
        dims = ctx.view.static_dims(split)
        axes = em.ints(list(range(2, rank)), "hw_axes")
        total = em.op("ReduceSum", [grad, axes], "g_sum_hw", keepdims=1)
        weights = em.op("Mul", [total, em.const(1.0 / float(np.prod(dims[1:])))], "g_mean_hw")
    r0 = em.op("Mul", [split, weights], "R0_raw")
    return emit.normalise_abs_total(em, r0, rank)


@register_method
class AE(Method):
    """Attribution Equilibrium: gradients on the head, AE's relevance rules on the body."""

    name = "ae"
    order = 0
    uses_split = True

    ratio = Param(2.0, "AE ratio r, degree of positive attribution, 1 <= r <= 2 (default 2)",
                  low=1.0, high=2.0, invalid="ratio must lie in [1, 2] (spec 4.1), got {value}",
                  error=AeqError, aliases=("r",), positional=True)
    add_rule = Param("residual", "relevance rule at an Add of two tensors (default residual)",
                     choices=("residual", "share", "z"), error=AeqError,
                     invalid="add rule must be one of {choices}, got {value}")
    contrast = seeding.CONTRAST
    versus = seeding.VERSUS

    def __init__(self, **values: object) -> None:
        super().__init__(**values)
        seeding.check(self)

    def needs(self, plan: Plan) -> Needs:
        return (("vjp", plan.head), ("relevance", plan.body))

    def extra_outputs(self) -> tuple[str, ...]:
        return seeding.extra_outputs(self)

    def check_model(self, ctx: EmitContext, plan: Plan) -> None:
        seeding.check_classes(self, ctx.view.static_dims(plan.logits)[0])

    def emit(self, ctx: EmitContext, plan: Plan) -> dict[str, str]:
        """Target, gradient chain, R0 and relevance chain (twice for the CLRP dual: the
        target's and the dual's, combined by :func:`~aeq_onnx.methods.contrast.clrp`)."""
        chosen, one_hot = chains.seed(ctx, plan)
        grads, r0s, rels = [], [], []
        seeds, extra = seeding.seeds(ctx.em, plan.logits, one_hot, self.contrast, self.versus,
                                     ctx.view.static_dims(plan.logits)[0])
        ctx.em.reuse = len(seeds) > 1  # the dual's chain reads the target's weight constants
        for seed in seeds:
            grads.append(chains.split_gradient(ctx, plan, seed))
            r0s.append(initial_relevance(ctx, plan.split, grads[-1]))
            rels.append(chains.input_relevance(ctx, plan, (plan.split, r0s[-1])))
        relevance = rels[0] if len(rels) == 1 else seeding.clrp(
            ctx.em, rels[0], rels[1], ctx.view.rank(plan.input))
        return {"logits": plan.logits, "target_class": chosen, "relevance": relevance,
                "initial_relevance": r0s[0], "split_gradient": grads[0], **extra}

    def conv_rule(self, is_input_layer: bool, kernel: tuple[int, ...]) -> LayerRule:
        """Bounded z^B at the input layer (4.3), pointwise for 1x1 kernels (4.2), equilibrium
        otherwise (4.1)."""
        if is_input_layer:
            return LayerRule("bounded", "AE bounded z^B input rule (4.3)")
        if all(k == 1 for k in kernel):
            return LayerRule("pointwise", "AE 1x1 rule (4.2)")
        return LayerRule("equilibrium", f"AE equilibrium rule, r={self.ratio:g} (4.1)",
                         ratio=self.ratio)

    def dense_rule(self, is_input_layer: bool) -> LayerRule:
        """The pointwise rule (4.4) for every dense layer."""
        return LayerRule("pointwise", "AE dense rule (4.4 = 4.2)")

    def join_rule(self) -> JoinRule:
        return cast(JoinRule, self.add_rule)
