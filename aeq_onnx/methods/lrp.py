"""LRP (Bach et al., PLoS ONE 2015, with Zennit 0.5's formulas): relevance from the logits
through the whole network.

``R = one_hot(t) · logits`` flows to the input through the relevance rules: the bounded z^B
rule at the input layer, LRP-ε or LRP-z⁺ at every other Conv and dense layer
(:mod:`aeq_onnx.rules.shared.lrp`), and the z-rule wherever two tensors join.
"""

from __future__ import annotations

from typing import ClassVar

from aeq_onnx.ir.graph import Dim
from aeq_onnx.ir.planning import Plan
from aeq_onnx.methods import chains
from aeq_onnx.methods.base import Method, Needs, Param, register_method
from aeq_onnx.rules.base import EmitContext, JoinRule, LayerRule
from aeq_onnx.rules.shared import lrp

BOUNDED = LayerRule("bounded", "bounded z^B input rule (4.3)")


class LRP(Method):
    """What LRP-ε and LRP-z⁺ share: all but the rule at a layer after the first."""

    facts: ClassVar[dict[str, str]] = {"input_rule": "zbox-sample-min-max", "add_rule": "z"}

    def needs(self, plan: Plan) -> Needs:
        return (("relevance", list(plan.relevance_body or plan.body)),)

    def plan_metadata(self, plan: Plan) -> dict[str, str]:
        """A token model's explainer names what runs (ae-tokens T3)."""
        if not plan.token_model:
            return {}
        return {"token_rules": "LRP on every linear layer (the bias inside z), conservative "
                               "propagation through LayerNorm and attention (sigma and the "
                               "probabilities held constant), constants absorbing their share"}

    def emit(self, ctx: EmitContext, plan: Plan) -> dict[str, str]:
        """``R = one_hot(t) · logits`` propagated by the relevance rules to the input."""
        chosen, one_hot = chains.seed(ctx, plan)
        start = lrp.seed(ctx.em, plan.logits, one_hot)
        relevance = chains.input_relevance(ctx, plan, (plan.logits, start))
        return {"logits": plan.logits, "target_class": chosen, "relevance": relevance,
                "initial_relevance": start}

    def output_shapes(self, ctx: EmitContext, plan: Plan) -> dict[str, list[Dim] | None]:
        return chains.logits_shape(ctx, plan)

    def layer_rule(self) -> LayerRule:
        """The rule of every Conv and dense layer after the input layer."""
        raise NotImplementedError

    def conv_rule(self, is_input_layer: bool, kernel: tuple[int, ...]) -> LayerRule:
        """Bounded z^B at the input layer, :meth:`layer_rule` everywhere else."""
        return BOUNDED if is_input_layer else self.layer_rule()

    def dense_rule(self, is_input_layer: bool) -> LayerRule:
        """Bounded z^B when the layer reads the model input (an MLP), else :meth:`layer_rule`."""
        return BOUNDED if is_input_layer else self.layer_rule()

    def join_rule(self) -> JoinRule:
        return "z"


@register_method
class LRPEpsilon(LRP):
    """LRP-ε: ``R_i = Σ_j x_i w_ij R_j / (z_j + ε·sign(z_j))``."""

    name = "lrp-epsilon"
    aliases = ("lrp-eps",)
    order = 30

    #: 0.25, the value Montavon et al. (2019, "LRP: an overview") use for the middle layers of
    #: VGG-16; absolute (not scaled by the activations' spread).
    epsilon = Param(0.25, "lrp-epsilon: stabiliser (default 0.25)", low=0.0,
                    invalid="epsilon must be >= 0, got {value}", aliases=("eps",))

    def layer_rule(self) -> LayerRule:
        return LayerRule("epsilon", f"LRP-epsilon, eps={self.epsilon:g}", epsilon=self.epsilon)


@register_method
class LRPZPlus(LRP):
    """LRP-z⁺: relevance in proportion to the positive contributions ``x_i w_ij⁺``."""

    name = "lrp-zplus"
    aliases = ("lrp-z+",)
    order = 31

    def layer_rule(self) -> LayerRule:
        return LayerRule("zplus", "LRP-z+")
