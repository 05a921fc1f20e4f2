"""What Conv and ConvTranspose share: the positive part of their bias and their LRP relevance
(ε with the bias inside z, or z⁺) over the layer's :class:`~.equilibrium.LinearMap`."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, LayerRule
from aeq_onnx.rules.shared import lrp
from aeq_onnx.rules.shared.equilibrium import LinearMap


def positive_bias(ctx: EmitContext, node: gs.Node, spatial: int) -> str | None:
    """``max(b, 0)`` of a Conv/ConvTranspose bias, shaped ``[C, 1, ...]`` (None: no bias)."""
    if len(node.inputs) < 3 or not node.inputs[2].name:
        return None
    bias = np.maximum(ctx.view.constant(node.inputs[2].name), 0).astype(np.float32)
    return ctx.em.const(bias.reshape(-1, *[1] * spatial), "bias_pos")


def lrp_relevance(ctx: EmitContext, node: gs.Node, lin: LinearMap, rule: LayerRule,
                  r: str) -> str:
    """LRP-ε (bias inside z = the node's output) or LRP-z⁺ for a Conv/ConvTranspose."""
    x = node.inputs[0].name
    if rule.variant == "epsilon":
        raw = lin.weight("raw")
        return lrp.epsilon(ctx.em, lin, x, node.outputs[0].name, r, rule.epsilon,
                           lambda s: lin.bwd(s, raw))
    bias = positive_bias(ctx, node, lin.rank_in - 2)
    return lrp.zplus(ctx.em, lin, x, r, bias, ctx.view.is_nonnegative(x))
