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

from aeq_onnx.errors import AeqError, LayerError
from aeq_onnx.ir import emit, per_sample
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


#: What a token model's explainer runs, by linear rule (the explainer's metadata, the docs).
TOKEN_RULES = {
    "conservative": "AE on convolutions, conservative propagation on token layers (per-token "
                    "linear layers by LRP-epsilon with the bias absorbing its share, LayerNorm "
                    "by LRP-0 with sigma held constant, attention by the z-rule with the "
                    "probabilities held constant, constants absorbing their share)",
    "equilibrium": "AE on convolutions and on per-token linear layers (rule 4.2, the bias an "
                   "always-active input), conservative propagation through LayerNorm and "
                   "attention (sigma and the probabilities held constant), constants "
                   "absorbing their share",
}


def token_initial_relevance(ctx: EmitContext, plan: Plan, grad: str, elementwise: bool
                            ) -> str:
    """ae-tokens T2: ``R0 = A · mean_t(g)`` over the split's token axes (``elementwise``:
    ``R0 = A · g``), then ``R0 / |Σ R0|`` per sample, wherever the sample axis lies."""
    em, samples, split = ctx.em, ctx.samples(), plan.split
    layout = samples.layout(split)
    problem = samples.reduction_problem(split)
    if layout is None or problem is not None:
        raise LayerError(f"the initial map at '{split}' needs a per-sample sum: {problem}")
    weights = grad
    axes = plan.split_axes
    if axes is None:
        axes = tuple(range(2, len(layout)))
    if not elementwise and axes:
        count = float(np.prod([int(layout[a]) for a in axes]))  # type: ignore[arg-type]
        total = em.op("ReduceSum", [grad, em.ints(list(axes), "token_axes")], "g_sum_t",
                      keepdims=1)
        weights = em.op("Mul", [total, em.const(1.0 / count)], "g_mean_t")
    r0 = em.op("Mul", [split, weights], "R0_raw")
    return per_sample.normalise_abs_total(em, r0, layout, samples.single_sample())


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
    initial_map = Param("auto", "AE initial map: channel-mean (section 3, mean over the "
                        "tokens or H,W) or elementwise (A·dy/dA); auto: elementwise on token "
                        "models, channel-mean otherwise (ae-tokens T2)",
                        choices=("auto", "channel-mean", "elementwise"), error=AeqError,
                        invalid="initial map must be one of {choices}, got {value}",
                        record_default=False)
    token_linear = Param("conservative", "rule of per-token linear layers in token models: "
                         "conservative (LRP-epsilon, bias absorbs) or equilibrium (AE 4.2, "
                         "bias an always-active input) (ae-tokens T3)",
                         choices=("conservative", "equilibrium"), error=AeqError,
                         invalid="token linear rule must be one of {choices}, got {value}",
                         record_default=False)
    token_add_rule = Param("z", "relevance rule at an Add of two tensors in token models "
                           "(default z; ae-tokens T3, T4)",
                           choices=("residual", "share", "z"), error=AeqError,
                           invalid="token add rule must be one of {choices}, got {value}",
                           record_default=False)

    def __init__(self, **values: object) -> None:
        super().__init__(**values)
        seeding.check(self)

    def needs(self, plan: Plan) -> Needs:
        return (("vjp", plan.head), ("relevance", list(plan.relevance_body or plan.body)))

    def elementwise_map(self, plan: Plan) -> bool:
        """Whether the initial map is ``A · ∂y/∂A`` (auto: on token models)."""
        if self.initial_map == "auto":
            return plan.token_model
        return self.initial_map == "elementwise"

    def plan_metadata(self, plan: Plan) -> dict[str, str]:
        """A token model's explainer names what runs (ae-tokens T4)."""
        if not plan.token_model:
            return {}
        return {"token_rules": TOKEN_RULES[self.token_linear],
                "initial_map_used": "elementwise" if self.elementwise_map(plan)
                else "channel-mean",
                "token_linear": self.token_linear, "token_add_rule": self.token_add_rule}

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
            r0s.append(self._initial_map(ctx, plan, grads[-1]))
            rels.append(chains.input_relevance(ctx, plan, (plan.split, r0s[-1])))
        relevance = rels[0] if len(rels) == 1 else seeding.clrp(
            ctx.em, rels[0], rels[1], ctx.view.rank(plan.input))
        return {"logits": plan.logits, "target_class": chosen, "relevance": relevance,
                "initial_relevance": r0s[0], "split_gradient": grads[0], **extra}

    def _initial_map(self, ctx: EmitContext, plan: Plan, grad: str) -> str:
        """R0 at the split: AE's channel-mean map (section 3) on a sample-first split, else the
        token form (ae-tokens T2; elementwise on token models by default)."""
        elementwise = self.elementwise_map(plan)
        if plan.split_axes is None and not elementwise and ctx.samples().sample_axis(
                plan.split) in (0, None):
            return initial_relevance(ctx, plan.split, grad)
        return token_initial_relevance(ctx, plan, grad, elementwise)

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

    def token_linear_rule(self, is_input_layer: bool) -> LayerRule:
        """Bounded z^B where the layer reads the input (a linear patch embedding, 4.3), else
        the ``token_linear`` rule (ae-tokens T3)."""
        if is_input_layer:
            return LayerRule("bounded", "AE bounded z^B input rule (4.3)")
        if self.token_linear == "equilibrium":
            return LayerRule("equilibrium-bias", "AE 4.2 per token, bias an always-active input")
        return LayerRule("conservative", "conservative: LRP-epsilon, bias absorbs its share")

    def token_join_rule(self) -> JoinRule:
        return cast(JoinRule, self.token_add_rule)
