"""ReduceSum over non-batch axes: its VJP, and the pooling z-rule for relevance (spec 4.6)::

    VJP(g) = expand(g);   xp = max(X, 0) + 1e-9;   R_in = xp · expand( sdiv(R, Σ_axes xp) )

A ReduceSum over H and W is also a spatial collapse (spec 2): jax2onnx writes ``x.mean((1, 2))``
of an NHWC map as ReduceSum then Div, so the split is the ReduceSum's input, as for ReduceMean.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.pooling import Back, Pool, reduce_axes


@register("ReduceSum")
class ReduceSumRule(Pool):
    """ReduceSum over constant non-batch axes: ``VJP(g) = expand(g)`` (every summand gets g)."""

    vjp_name = "expand(g)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        axes = reduce_axes(ctx, node)
        if axes is None:
            return "ReduceSum with non-constant axes"
        if not axes:
            return "ReduceSum over no axis (noop_with_empty_axes)"
        if 0 in axes:
            return "ReduceSum over the batch axis"
        return None

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        axes = reduce_axes(ctx, node) or []
        keep = int(node.attrs.get("keepdims", 1))
        pooled = em.op("ReduceSum", [x, em.ints(axes, "axes")], "reduce_sum", keepdims=keep)

        def back(g: str) -> str:
            if not keep:
                g = em.op("Unsqueeze", [g, em.ints(axes, "axes")], "unsqueeze")
            return em.op("Expand", [g, em.op("Shape", [x], "x_shape")], "sum_vjp")

        return pooled, back
