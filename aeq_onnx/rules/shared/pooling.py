"""What the pools and reductions share: relevance by the z-rule on the positive part (spec
4.6)::

    xp = max(X, 0) + 1e-9;   R_in = xp · VJP_pool( sdiv(R, pool(xp)) )

each subclass giving ``pool(x)`` and its exact VJP; every pool keeps the sign (``sign_keeping``).
"""

from __future__ import annotations

from collections.abc import Callable

import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import relu, zero_after
from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single

Back = Callable[[str], str]
EPS = 1e-9


class Pool(OpRule):
    """A pool as ``pool(x)`` and its VJP; relevance is the z-rule on ``xp``."""

    data_inputs = (0,)
    relevance_name = "z-rule on x+ (4.6)"
    traits = frozenset({"sign_keeping"})

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        """Emit ``pool(x)`` and return it with a function emitting ``VJP_pool`` at ``x``."""
        raise NotImplementedError

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        _, back = self.pool_and_back(ctx, node, node.inputs[0].name)
        return {0: back(single(grad))}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        em = ctx.em
        eps = em.op("Add", [em.const(EPS), zero_after(em, single(rel))], "eps")  # once R is here
        xp = em.op("Add", [relu(em, node.inputs[0].name), eps], "xp")
        pooled, back = self.pool_and_back(ctx, node, xp)
        ratio = em.op("Div", [single(rel), pooled], "R_over_pool")  # pool(xp) >= 1e-9 > 0
        return {0: em.op("Mul", [xp, back(ratio)], "pool_R_in")}


def pool_attrs(node: gs.Node) -> dict[str, object]:
    """The attributes of a MaxPool/AveragePool node that its pool in the explainer keeps."""
    keep = ("kernel_shape", "strides", "pads", "dilations", "ceil_mode", "auto_pad",
            "count_include_pad", "storage_order")
    return {k: v for k, v in node.attrs.items() if k in keep}


def reduce_axes(ctx: EmitContext, node: gs.Node) -> list[int] | None:
    """The reduced axes, non-negative and sorted (None when not a constant)."""
    rank = ctx.view.rank(node.inputs[0].name)
    if ctx.view.opset < 18 or node.op not in ("ReduceMean", "ReduceMax", "ReduceSum"):
        axes = node.attrs.get("axes")
    elif len(node.inputs) > 1 and node.inputs[1].name:
        if not ctx.view.is_constant(node.inputs[1].name):
            return None
        axes = ctx.view.constant(node.inputs[1].name).tolist()
    else:
        axes = None
    if not axes:
        empty_is_noop = int(node.attrs.get("noop_with_empty_axes", 0))
        return [] if empty_is_noop else list(range(rank))
    return sorted(int(a) % rank for a in axes)
