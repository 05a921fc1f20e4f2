"""Sum of n same-shaped tensors: ``g`` to every operand; two operands follow Add exactly
(rules/add.py), more are split by the z-rule or its ``share`` rescaling (spec 4.7)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.add import AddRule
from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.elementwise import constant_operand_problem, same_shape
from aeq_onnx.rules.shared.joins import join_rule, nary_split


@register("Sum")
class SumRule(AddRule):
    """Sum of n same-shaped tensors: ``g`` to every operand. Relevance: one tensor plus
    constants passes through; two tensors follow Add exactly (residual/share/z, 4.7); for
    n > 2 ``z`` is ``R_i = x_i·sdiv(R, y)`` (what pairwise z gives) and ``share`` (also the
    ``residual`` fallback: no single shortcut among n operands) rescales those to split
    ``Σ R`` as ``|Σ R_i|``. Constants next to several tensors are refused."""

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        variable, y = ctx.view.variable_inputs(node), node.outputs[0].name
        if len(variable) == 1:
            return constant_operand_problem(ctx, node)
        if len(variable) != len(node.inputs):
            return "Sum of several tensors and a constant"
        if not all(same_shape(ctx, t.name, y) for t in node.inputs):
            return "Sum of tensors with broadcasting"
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        if len(node.inputs) <= 2:
            return super().describe(ctx, node)
        return f"{'z' if join_rule(ctx) == 'z' else 'share'} over {len(node.inputs)} (4.7)"

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        if len(ctx.view.variable_inputs(node)) <= 2:
            return super().relevance(ctx, node, rel)
        y = node.outputs[0].name
        parts = nary_split(ctx.em, [t.name for t in node.inputs], y, single(rel),
                           ctx.view.rank(y), share=join_rule(ctx) != "z")
        return dict(enumerate(parts))
