"""MaxPool: the gradient goes to each window's arg-max, relevance by the z-rule on x+ (spec
4.6); a windowed pool."""

from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.pooling import Back, Pool, pool_attrs


def _window_problem(ctx: EmitContext, node: gs.Node) -> str | None:
    """Why a pool's window does not fit its (padded) input, or None."""
    out = ctx.view.shape(node.outputs[0].name)
    if out is None or any(isinstance(d, int) and d < 1 for d in out[2:]):
        return f"{node.op} whose window does not fit its input (output shape {out})"
    return None


@register("MaxPool", since=8)
class MaxPoolRule(Pool):
    """MaxPool: the gradient goes to each window's arg-max (first index on ties)."""

    vjp_name = "scatter-add to the arg-max indices"
    traits = frozenset({"window_pool", "sign_keeping"})

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if int(node.attrs.get("storage_order", 0)):
            return "MaxPool with storage_order=1"
        return _window_problem(ctx, node)

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        pooled, indices = em.op_multi("MaxPool", [x], 2, "maxpool", **pool_attrs(node))

        def back(g: str) -> str:
            shape = em.op("Shape", [x], "x_shape")
            flat = em.ints([-1], "flat")
            zeros = em.op("ConstantOfShape", [em.op("ReduceProd", [shape], "numel", keepdims=1)],
                          "zeros", value=onnx.helper.make_tensor("v", onnx.TensorProto.FLOAT,
                                                                  [1], [0.0]))
            scattered = em.op(
                "ScatterElements",
                [zeros, em.op("Reshape", [indices, flat]), em.op("Reshape", [g, flat])],
                "maxpool_scatter", axis=0, reduction="add",
            )
            return em.op("Reshape", [scattered, shape], "maxpool_vjp")

        return pooled, back
