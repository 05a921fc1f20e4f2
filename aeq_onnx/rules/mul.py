"""Mul: by a constant (pass-through, spec 4.5), or of two tensors where one is a gate (4.8).

Mul by a constant ``c``: ``dX = g·c``, relevance passes through to the data operand.

Gating (SiLU/Swish ``x·sigmoid(x)``, squeeze-and-excitation ``x·sigmoid(fc(pool(x)))``,
HardSwish written ``x·HardSigmoid(x)``): all relevance goes to the signal, the operand NOT
produced by a ``gate`` op (Sigmoid, HardSigmoid: a trait on their rules), or GELU's gate
``0.5·(1 + erf(x/√2))`` (or its tanh form) of the other operand (ae-tokens T3); the gate
receives nothing. A Mul of two tensors with no gate
or two gates is refused (the spec's ``R/2`` fallback is not implemented).

VJP of ``y = a·b``: ``da = Σ_bcast(g·b)``, ``db = Σ_bcast(g·a)``, each summed (keepdims) over
the axes where that operand was broadcast.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.traits import GATE
from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.elementwise import WithConstant, constant_operand_problem, same_shape
from aeq_onnx.rules.shared.gelu_gate import gelu_gate


def gate_indices(ctx: EmitContext, node: gs.Node) -> list[int]:
    """The operands of ``node`` produced by Sigmoid or HardSigmoid, or GELU's gate of the
    other operand (``0.5·(1 + erf(x/√2))`` and the tanh form: ae-tokens T3)."""
    return view_gate_indices(ctx.view, node)


def view_gate_indices(view: GraphView, node: gs.Node) -> list[int]:
    """:func:`gate_indices` from the graph view alone."""
    found = []
    for i, t in enumerate(node.inputs):
        producer = view.producer(t.name)
        if producer is not None and GATE in view.traits(producer):
            found.append(i)
    if not found and len(node.inputs) == 2 and len(view.variable_inputs(node)) == 2:
        found = [i for i in (0, 1)
                 if gelu_gate(view, node.inputs[i].name, node.inputs[1 - i].name)]
    return found


def broadcast_axes(ctx: EmitContext, operand: str, out: str) -> list[int] | None:
    """Non-batch axes along which ``operand`` is broadcast to ``out`` (None: unsupported)."""
    a, y = ctx.view.shape(operand), ctx.view.shape(out)
    if a is None or y is None or len(a) != len(y):
        return None
    dims_a, dims_y = a[1:], y[1:]
    if not all(isinstance(d, int) for d in (*dims_a, *dims_y)):
        return None
    return [i + 1 for i, (da, dy) in enumerate(zip(dims_a, dims_y, strict=True)) if da != dy]


class MulRule(WithConstant):
    """``x · c``: ``dX = g · c`` (the part of :class:`GatedMulRule` for a constant operand)."""

    vjp_name = "g·c"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        index = ctx.view.variable_inputs(node)[0]
        c = node.inputs[1 - index].name
        return {index: ctx.em.op("Mul", [single(grad), c], "mul_vjp")}


@register("Mul")
class GatedMulRule(MulRule):
    """Mul by a constant (``dX = g·c``, pass-through) or of two tensors (product-rule VJP,
    relevance all to the non-gate operand, spec 4.8)."""

    vjp_name = "g·c; product rule for two tensors"
    relevance_name = "pass-through with a constant; all to the signal of a gate (4.8)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if len(ctx.view.variable_inputs(node)) != 2:
            return constant_operand_problem(ctx, node)
        y = node.outputs[0].name
        if any(broadcast_axes(ctx, t.name, y) is None for t in node.inputs):
            return "Mul of two tensors of different ranks or unknown shapes"
        if need == "vjp":
            return None
        gates = gate_indices(ctx, node)
        if len(gates) != 1:
            which = "both operands are" if gates else "neither operand is"
            return f"Mul of two tensors where {which} a gate (Sigmoid/HardSigmoid)"
        if not same_shape(ctx, node.inputs[1 - gates[0]].name, y):
            return "gating Mul whose signal is broadcast"
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        if len(ctx.view.variable_inputs(node)) == 2:
            return "gate: all to the signal (4.8)"
        return "pass-through (4.5)"

    def relevance_indices_of(self, view: GraphView, node: gs.Node) -> list[int]:
        """A gate receives no relevance: only the signal is a relevance edge."""
        variable = view.variable_inputs(node)
        gates = view_gate_indices(view, node) if len(variable) == 2 else []
        if len(gates) == 1:
            return [1 - gates[0]]
        return super().relevance_indices_of(view, node)

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        if len(ctx.view.variable_inputs(node)) != 2:
            return super().vjp(ctx, node, grad)
        em, g, y = ctx.em, single(grad), node.outputs[0].name
        a, b = node.inputs[0].name, node.inputs[1].name
        flows: Flows = {}
        for index, (mine, other) in enumerate(((a, b), (b, a))):
            local = em.op("Mul", [g, other], "mul2_vjp")
            axes = broadcast_axes(ctx, mine, y) or []
            if axes:
                local = em.op("ReduceSum", [local, em.ints(axes, "axes")], "mul2_unbroadcast",
                              keepdims=1)
            flows[index] = local
        return flows

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        if len(ctx.view.variable_inputs(node)) != 2:
            return super().relevance(ctx, node, rel)
        return {1 - gate_indices(ctx, node)[0]: single(rel)}
