"""What the ops that only move values share (spec 4.9): gradient and relevance take the same
way back, the transpose of the value mapping; and the helpers several of them use."""

from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule


class Mapping(OpRule):
    """An op that only moves values: gradient and relevance take the same way back."""

    data_inputs = (0,)

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        """Emit the transpose of the value mapping applied to the output flows."""
        raise NotImplementedError

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: self.back(ctx, node, grad)}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {0: self.back(ctx, node, rel)}


def zeros_like(ctx: EmitContext, like: str) -> str:
    """A float32 zero tensor with the runtime shape of ``like``."""
    em = ctx.em
    value = onnx.helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [0.0])
    return em.op("ConstantOfShape", [em.op("Shape", [like], "like_shape")], "zeros", value=value)


def constant_ints(ctx: EmitContext, node: gs.Node, index: int) -> list[int] | None:
    """A constant int input as a list ([] when absent, None when not a constant)."""
    if len(node.inputs) <= index or not node.inputs[index].name:
        return []
    name = node.inputs[index].name
    if not ctx.view.is_constant(name):
        return None
    return [int(v) for v in ctx.view.constant(name).reshape(-1)]
