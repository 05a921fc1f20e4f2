"""What the activations and normalisations share: relevance passes through unchanged (spec
4.5), each rule gives its exact VJP; and two slopes several of them use."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single


class PassThrough(OpRule):
    """``R_in = R`` on the data input (spec 4.5); subclasses give the VJP."""

    data_inputs = (0,)
    relevance_name = "pass-through (4.5)"

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {0: single(rel)}


def where_positive(ctx: EmitContext, x: str, pos: str, neg: str, hint: str) -> str:
    """``x > 0 ? pos : neg``."""
    em = ctx.em
    return em.op("Where", [em.op("Greater", [x, em.const(0.0)], f"{hint}_gt0"), pos, neg], hint)


def hard_sigmoid_slope(ctx: EmitContext, x: str, alpha: float, beta: float) -> str:
    """``alpha · 1[0 < alpha·x + beta < 1]`` (the derivative of HardSigmoid)."""
    em = ctx.em
    lin = em.op("Add", [em.op("Mul", [x, em.const(alpha)], "hs_ax"), em.const(beta)], "hs_lin")
    inside = em.op("And", [em.op("Greater", [lin, em.const(0.0)], "hs_gt0"),
                           em.op("Less", [lin, em.const(1.0)], "hs_lt1")], "hs_inside")
    return em.op("Where", [inside, em.const(alpha), em.const(0.0)], "hs_slope")
