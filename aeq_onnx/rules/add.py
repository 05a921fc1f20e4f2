"""Add: a bias (pass-through, spec 4.5; in a token model the constant absorbs its share,
ae-tokens T3) or the join of two tensors (residual, share or z; spec 4.7)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared import token_constants
from aeq_onnx.rules.shared.elementwise import constant_operand_problem, same_shape
from aeq_onnx.rules.shared.joins import join_rule, share_split, shortcut_index, summed, z_split


@register("Add")
class AddRule(OpRule):
    """Add: a bias (pass-through; in a token model the constant absorbs its share) or a join
    of two tensors (residual, share or z; spec 4.7)."""

    vjp_name = "g to every operand"
    relevance_name = ("pass-through with a constant (absorbs in token models); "
                      "residual/share/z for two tensors (4.7)")

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if len(ctx.view.variable_inputs(node)) == 1:
            problem = constant_operand_problem(ctx, node)
            if problem is None and need == "relevance" and token_constants.absorbs(ctx, node):
                return token_constants.check(ctx, node)
            return problem
        a, b, y = (t.name for t in (*node.inputs, node.outputs[0]))
        if not (same_shape(ctx, a, y) and same_shape(ctx, b, y)):
            return "Add of two tensors with broadcasting"
        if need == "relevance" and join_rule(ctx) != "z" and summed(ctx, y) is not None:
            return ctx.samples().reduction_problem(y)
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        if len(ctx.view.variable_inputs(node)) == 1:
            if token_constants.absorbs(ctx, node):
                return token_constants.ABSORB_NAME
            return "pass-through (4.5)"
        if join_rule(ctx) == "residual" and shortcut_index(ctx, node) is not None:
            return "residual: all to the branch (4.7)"
        rule = "z" if join_rule(ctx) == "z" else "share"
        return f"{rule} (4.7)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {i: single(grad) for i in ctx.view.variable_inputs(node)}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        variable, r = ctx.view.variable_inputs(node), single(rel)
        if len(variable) == 1:
            if token_constants.absorbs(ctx, node):
                return {variable[0]: token_constants.absorb(ctx, node, r)}
            return {variable[0]: r}
        rule = join_rule(ctx)
        if rule == "residual":
            shortcut = shortcut_index(ctx, node)
            if shortcut is not None:
                return {1 - shortcut: r}
        a, b, y = (t.name for t in (*node.inputs, node.outputs[0]))
        if rule == "z":
            ra, rb = z_split(ctx.em, a, b, y, r)
        else:
            ra, rb = share_split(ctx.em, a, b, y, r, ctx.view.rank(y), summed(ctx, y))
        return {0: ra, 1: rb}
