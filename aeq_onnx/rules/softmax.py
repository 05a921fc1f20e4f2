"""Softmax: at the model output the compiler explains its input, the logits (spec 3); inside
the graph its exact VJP, and below the split the probabilities are a gate (ae-tokens T3): the
attention logits (Q·Kᵀ, relative-position bias, masks) that feed it get no relevance.
LogSoftmax has no rule: only its trait is declared here."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.ir.graph import GraphView
from aeq_onnx.rules.base import EmitContext, Flows, OpRule, OpTraits, single
from aeq_onnx.rules.registry import declare, register


@register("Softmax", since=13)
class SoftmaxRule(OpRule):
    """``y = softmax(x)`` along one axis: ``dX = y·(g - Σ_axis g·y)``; relevance: none (a
    gate, like the attention probabilities it computes)."""

    data_inputs = (0,)
    vjp_name = "y·(g - Σ g·y)"
    relevance_name = "gate: no relevance (attention probabilities)"
    traits = frozenset({"softmax"})

    def relevance_indices_of(self, view: GraphView, node: gs.Node) -> list[int]:
        return []

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, y, g = ctx.em, node.outputs[0].name, single(grad)
        axis = int(node.attrs.get("axis", -1))
        dot = em.op("ReduceSum", [em.op("Mul", [g, y], "g_y"), em.ints([axis], "axes")],
                    "g_dot_y", keepdims=1)
        return {0: em.op("Mul", [y, em.op("Sub", [g, dot], "g_centred")], "softmax_vjp")}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {}


@declare("LogSoftmax")
class LogSoftmaxAtOutput(OpTraits):
    """not a rule: at the model output the compiler explains its input, the logits (spec 3)."""

    traits = frozenset({"softmax"})
