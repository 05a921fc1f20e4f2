"""ReduceMax over trailing non-batch axes: the gradient goes to the first arg-max of each
block, relevance by the z-rule on x+ (spec 4.6)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.pooling import Back, Pool, reduce_axes


def _trailing_block(ctx: EmitContext, node: gs.Node) -> list[int] | None:
    """ReduceMax's axes when they are constant, non-batch and a trailing block (else None)."""
    axes = reduce_axes(ctx, node)
    rank = ctx.view.rank(node.inputs[0].name)
    if not axes or 0 in axes or axes != list(range(axes[0], rank)):
        return None
    return axes


@register("ReduceMax")
class ReduceMaxRule(Pool):
    """ReduceMax over trailing non-batch axes (H,W...): the gradient goes to the first
    arg-max of each reduced block (spec 4.6), ``VJP(g) = onehot(argmax(x)) · g``."""

    vjp_name = "g to the first arg-max"
    traits = frozenset({"sign_keeping", "token_pool"})

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if _trailing_block(ctx, node) is None:
            return "ReduceMax over axes that are not constant trailing non-batch axes"
        return None

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        axes = _trailing_block(ctx, node) or []
        dims = ctx.view.static_dims(node.inputs[0].name)
        lead, size = list(dims[: axes[0] - 1]), int(np.prod(dims[axes[0] - 1:]))
        flat = em.op("Reshape", [x, em.ints([0, *lead, size], "rmax_flat")], "rmax_x")
        last = len(lead) + 1
        if em.opset >= 18:
            top = em.op("ReduceMax", [flat, em.ints([last], "axes")], "rmax", keepdims=1)
        else:
            top = em.op("ReduceMax", [flat], "rmax", axes=[last], keepdims=1)
        out_dims = ctx.view.static_dims(node.outputs[0].name)
        pooled = em.op("Reshape", [top, em.ints([0, *out_dims], "rmax_out")], "reduce_max")
        first = em.op("ArgMax", [flat], "rmax_arg", axis=last, keepdims=1, select_last_index=0)
        iota = em.const(np.arange(size, dtype=np.int64), "rmax_iota")
        onehot = em.op("Cast", [em.op("Equal", [iota, first], "rmax_is_arg")], "rmax_onehot",
                       to=onnx.TensorProto.FLOAT)

        def back(g: str) -> str:
            column = em.op("Reshape", [g, em.ints([0, *lead, 1], "rmax_col")], "rmax_g")
            spread = em.op("Mul", [onehot, column], "rmax_spread")
            return em.op("Reshape", [spread, em.op("Shape", [x], "x_shape")], "rmax_vjp")

        return pooled, back
