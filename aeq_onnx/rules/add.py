"""Add: a bias (pass-through, spec 4.5) or the join of two tensors (residual, share or z;
spec 4.7)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.elementwise import constant_operand_problem, same_shape
from aeq_onnx.rules.shared.joins import share_split, shortcut_index, z_split


@register("Add")
class AddRule(OpRule):
    """Add: a bias (pass-through) or a join of two tensors (residual, share or z; spec 4.7)."""

    vjp_name = "g to every operand"
    relevance_name = "pass-through with a constant; residual/share/z for two tensors (4.7)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if len(ctx.view.variable_inputs(node)) == 1:
            return constant_operand_problem(ctx, node)
        a, b, y = (t.name for t in (*node.inputs, node.outputs[0]))
        if not (same_shape(ctx, a, y) and same_shape(ctx, b, y)):
            return "Add of two tensors with broadcasting"
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        if len(ctx.view.variable_inputs(node)) == 1:
            return "pass-through (4.5)"
        if ctx.method.join_rule() == "residual" and shortcut_index(ctx, node) is not None:
            return "residual: all to the branch (4.7)"
        rule = "z" if ctx.method.join_rule() == "z" else "share"
        return f"{rule} (4.7)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {i: single(grad) for i in ctx.view.variable_inputs(node)}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        variable, r = ctx.view.variable_inputs(node), single(rel)
        if len(variable) == 1:
            return {variable[0]: r}
        if ctx.method.join_rule() == "residual":
            shortcut = shortcut_index(ctx, node)
            if shortcut is not None:
                return {1 - shortcut: r}
        a, b, y = (t.name for t in (*node.inputs, node.outputs[0]))
        if ctx.method.join_rule() == "z":
            ra, rb = z_split(ctx.em, a, b, y, r)
        else:
            ra, rb = share_split(ctx.em, a, b, y, r, ctx.view.rank(y))
        return {0: ra, 1: rb}
