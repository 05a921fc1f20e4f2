"""What Gemm and MatMul with a constant weight share: VJP by MatMul with W^T, relevance by
spec 4.4.

A dense layer is a 1x1 convolution over a 1x1 map, so its AE relevance is the pointwise rule
(4.2); AE reaches it only in models whose split tensor lies before a dense layer (MLPs). LRP
(:mod:`aeq_onnx.rules.shared.lrp`) reaches every dense layer: ε or z⁺ with the bias of a Gemm
(a MatMul's bias is a separate Add, which passes relevance through), z^B where the layer reads
the input. Both are ``linear`` and ``dense`` layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import Emitter
from aeq_onnx.rules.base import EmitContext, Flows, LayerRule, OpRule, single
from aeq_onnx.rules.shared import equilibrium, lrp, token_linear
from aeq_onnx.rules.shared.equilibrium import WeightKind, WeightVariants


@dataclass
class DenseMap:
    """``x @ W`` with W of shape [K, M], and its transpose ``s @ W^T``."""

    em: Emitter
    w: np.ndarray
    rank_in: int
    hint: str

    def __post_init__(self) -> None:
        self.weights = WeightVariants(self.em, self.w, self.hint)

    @property
    def rank_out(self) -> int:
        return self.rank_in

    def weight(self, kind: WeightKind) -> str:
        return self.weights.get(kind)

    def fwd(self, x: str, w: str) -> str:
        return self.em.op("MatMul", [x, w], "dense")

    def fwd_floored(self, x: str, w: str) -> str | None:
        return None

    def bwd(self, s: str, w: str) -> str:
        return times_transposed(self.em, s, w, self.rank_in)


def times_transposed(em: Emitter, s: str, w: str, rank: int, alpha: float = 1.0) -> str:
    """``alpha · s @ w^T`` without storing a transposed copy of ``w``."""
    if rank == 2:
        return em.op("Gemm", [s, w], "dense_T", alpha=alpha, transB=1)
    product = em.op("MatMul", [s, em.op("Transpose", [w], "W_T")], "dense_T")
    return product if alpha == 1.0 else em.op("Mul", [product, em.const(alpha)], "dense_T")


class Dense(OpRule):
    """Shared VJP and relevance for dense layers; subclasses give the effective weight."""

    data_inputs = (0,)
    vjp_name = "MatMul with W^T"
    relevance_name = "AE dense rule (4.4 = 4.2)"
    traits = frozenset({"linear", "dense"})

    def weight(self, ctx: EmitContext, node: gs.Node) -> np.ndarray:
        raise NotImplementedError

    def layer_rule(self, ctx: EmitContext, node: gs.Node) -> LayerRule:
        """The method's rule for this layer: per-token (ae-tokens T3) or dense (4.4)."""
        is_input = node.outputs[0].name in ctx.input_layers
        if token_linear.is_token_layer(ctx, node):
            return ctx.method.token_linear_rule(is_input)
        return ctx.method.dense_rule(is_input)

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        return self.layer_rule(ctx, node).label

    def check_layer(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        """What a token layer's rule needs (per-sample reductions), for relevance."""
        if need != "relevance" or not token_linear.is_token_layer(ctx, node):
            return None
        return token_linear.check(ctx, node, self.layer_rule(ctx, node))

    def dense(self, ctx: EmitContext, node: gs.Node) -> DenseMap:
        rank = ctx.view.rank(node.inputs[0].name)
        return DenseMap(ctx.em, self.weight(ctx, node), rank, node.outputs[0].name)

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        """``dA = alpha · g @ W^T``, reading the node's own weight initializer."""
        alpha = float(node.attrs.get("alpha", 1.0))
        rank = ctx.view.rank(node.inputs[0].name)
        return {0: times_transposed(ctx.em, single(grad), node.inputs[1].name, rank, alpha)}

    def positive_bias(self, ctx: EmitContext, node: gs.Node) -> str | None:
        """``max(b, 0)`` of the layer's own constant bias (None: none in the node)."""
        return None

    def token_relevance(self, ctx: EmitContext, node: gs.Node, rule: LayerRule, r: str
                        ) -> str | None:
        """A token layer's relevance, z and b read as one layer (None: not one of the token
        variants, nor a bias that changes the LRP rules)."""
        x = node.inputs[0].name
        alpha = float(node.attrs.get("alpha", 1.0))
        w = alpha * self.weight(ctx, node)
        z, bias = token_linear.layer_output_and_bias(ctx, node, w)
        if rule.variant == "conservative":
            return token_linear.conservative(ctx, x, z, r, lambda s: self.vjp(ctx, node, [s])[0])
        if rule.variant == "equilibrium-bias":
            return token_linear.equilibrium(ctx, x, z, r, w, bias)
        if z == node.outputs[0].name or rule.variant not in ("epsilon", "zplus"):
            return None
        lin = DenseMap(ctx.em, w, ctx.view.rank(x), node.outputs[0].name)
        if rule.variant == "epsilon":
            return lrp.epsilon(ctx.em, lin, x, z, r, rule.epsilon,
                               lambda s: self.vjp(ctx, node, [s])[0])
        bias_pos = ctx.em.const(np.maximum(bias, 0).astype(np.float32), "bias_pos")  # type: ignore[arg-type]
        return lrp.zplus(ctx.em, lin, x, r, bias_pos, ctx.view.is_nonnegative(x))

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        x, r = node.inputs[0].name, single(rel)
        if token_linear.is_token_layer(ctx, node):
            rule = self.layer_rule(ctx, node)
            token = self.token_relevance(ctx, node, rule, r)
            if token is not None:
                return {0: token}
        else:
            rule = ctx.method.dense_rule(node.outputs[0].name in ctx.input_layers)
        if rule.variant == "pointwise":
            return {0: equilibrium.pointwise(ctx.em, self.dense(ctx, node), x, r)}
        alpha = float(node.attrs.get("alpha", 1.0))
        lin = DenseMap(ctx.em, alpha * self.weight(ctx, node), ctx.view.rank(x),
                       node.outputs[0].name)
        if rule.variant == "bounded":
            return {0: equilibrium.bounded(ctx.em, lin, x, r)}
        if rule.variant == "epsilon":
            return {0: lrp.epsilon(ctx.em, lin, x, node.outputs[0].name, r,
                                   rule.epsilon, lambda s: self.vjp(ctx, node, [s])[0])}
        return {0: lrp.zplus(ctx.em, lin, x, r, self.positive_bias(ctx, node),
                             ctx.view.is_nonnegative(x))}
