"""What Sub, Mul, Div, Add and Sum share: operand shapes, and the binary op with one constant
operand (a bias, a scaling, input normalisation), whose relevance passes through to the data
operand (spec 4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single


def same_shape(ctx: EmitContext, a: str, b: str) -> bool:
    """True when both tensors have the same known shape (batch aside)."""
    sa, sb = ctx.view.shape(a), ctx.view.shape(b)
    return sa is not None and sb is not None and len(sa) == len(sb) and sa[1:] == sb[1:]


def constant_operand_problem(ctx: EmitContext, node: gs.Node) -> str | None:
    """Why this binary node is not 'one variable operand, one constant that does not widen it'."""
    variable = ctx.view.variable_inputs(node)
    if len(variable) != 1:
        return f"{node.op} of {len(variable)} non-constant operands"
    if not same_shape(ctx, node.inputs[variable[0]].name, node.outputs[0].name):
        return f"{node.op} whose constant broadcasts its data operand to a larger shape"
    return None


class WithConstant(OpRule):
    """A binary op with one constant operand; relevance passes through (spec 4.5)."""

    relevance_name = "pass-through (4.5)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        return constant_operand_problem(ctx, node)

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {ctx.view.variable_inputs(node)[0]: single(rel)}
