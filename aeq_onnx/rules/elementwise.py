"""Sub, Mul and Div with a constant operand (bias, scaling, input normalisation).

VJP: ``g``, ``-g``, ``g·c`` or ``g/c``; relevance passes through to the data operand (spec 4.5).
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


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


@register("Sub")
class SubRule(WithConstant):
    """``x - c``: ``dX = g``; ``c - x``: ``dX = -g``."""

    vjp_name = "±g"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        index = ctx.view.variable_inputs(node)[0]
        g = single(grad)
        return {index: g if index == 0 else ctx.em.op("Neg", [g], "sub_vjp")}


class MulRule(WithConstant):
    """``x · c``: ``dX = g · c`` (registered for Mul by :mod:`aeq_onnx.rules.gating`, which
    adds the product of two tensors)."""

    vjp_name = "g·c"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        index = ctx.view.variable_inputs(node)[0]
        c = node.inputs[1 - index].name
        return {index: ctx.em.op("Mul", [single(grad), c], "mul_vjp")}


@register("Div")
class DivRule(WithConstant):
    """``x / c``: ``dX = g / c`` (a constant divided by the data is not supported)."""

    vjp_name = "g/c"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        problem = constant_operand_problem(ctx, node)
        if problem is None and ctx.view.variable_inputs(node)[0] != 0:
            return "Div of a constant by the data"
        return problem

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: ctx.em.op("Div", [single(grad), node.inputs[1].name], "div_vjp")}
