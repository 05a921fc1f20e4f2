"""ReduceMean over non-batch axes: ``VJP(g) = expand(g) / count``, relevance by the z-rule on
x+ (spec 4.6)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.pooling import Back, Pool, reduce_axes


@register("ReduceMean")
class ReduceMeanRule(Pool):
    """ReduceMean over non-batch axes: ``VJP(g) = expand(g) / count``."""

    vjp_name = "expand(g)/count"
    traits = frozenset({"sign_keeping", "token_pool"})

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        axes = reduce_axes(ctx, node)
        if axes is None:
            return "ReduceMean with non-constant axes"
        if 0 in axes:
            return "ReduceMean over the batch axis"
        return None

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        axes = reduce_axes(ctx, node) or []
        keep = int(node.attrs.get("keepdims", 1))
        pooled = em.op("ReduceSum", [x, em.ints(axes, "axes")], "reduce_sum", keepdims=keep)
        dims = ctx.view.static_dims(node.inputs[0].name)
        count = float(np.prod([dims[a - 1] for a in axes]))
        pooled = em.op("Mul", [pooled, em.const(1.0 / count)], "reduce_mean")

        def back(g: str) -> str:
            if not keep:
                g = em.op("Unsqueeze", [g, em.ints(axes, "axes")], "unsqueeze")
            spread = em.op("Expand", [g, em.op("Shape", [x], "x_shape")], "mean_expand")
            return em.op("Mul", [spread, em.const(1.0 / count)], "mean_vjp")

        return pooled, back
