"""MatMul of two tensors (ae-tokens T3): the product rule for its VJP; attention mixing for
relevance.

``y = P @ V`` where P comes (through Dropout/Cast/Reshape/Transpose) from a Softmax: the
probabilities are a gate and get nothing, V gets the z-rule with P held fixed::

    R_V = V ⊙ (Pᵀ @ sdiv_ε(R, y))          (ε = 1e-6 · max|y| per sample)

so ``Σ R_V = Σ R`` up to the stabiliser. Q·Kᵀ (neither operand softmax probabilities) only
feeds the Softmax and never receives relevance; any other product of two tensors that
relevance reaches is refused. VJP: ``dA = g @ Bᵀ``, ``dB = Aᵀ @ g``, each summed over the
batch axes along which its operand was broadcast.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.ir import per_sample
from aeq_onnx.ir.graph import GraphView
from aeq_onnx.rules.base import EmitContext, Flows

#: Ops an attention matrix may pass between its Softmax and the product with V.
PROBABILITY_PATH = frozenset({"Dropout", "Cast", "Reshape", "Transpose", "Identity",
                              "Squeeze", "Unsqueeze"})
RELEVANCE_NAME = "attention: P a gate, V by the z-rule R_V = V·(Pᵀ sdiv_ε(R, PV))"


def from_softmax(view: GraphView, name: str, depth: int = 8) -> bool:
    """True when ``name`` is softmax probabilities, possibly reshaped, transposed, cast."""
    node = view.producer(name)
    for _ in range(depth):
        if node is None:
            return False
        if node.op == "Softmax":
            return True
        if node.op not in PROBABILITY_PATH:
            return False
        node = view.producer(node.inputs[0].name)
    return False


def is_attention(view: GraphView, node: gs.Node) -> bool:
    """A MatMul(P, V) of two tensors whose first operand is softmax probabilities."""
    return (node.op == "MatMul" and len(view.variable_inputs(node)) == 2
            and from_softmax(view, node.inputs[0].name))


def relevance_inputs(view: GraphView, node: gs.Node) -> list[int]:
    """Only V receives relevance at attention mixing (both operands elsewhere: refused)."""
    return [1] if is_attention(view, node) else [0, 1]


def _broadcast_axes(ctx: EmitContext, operand: str, out: str) -> list[int] | None:
    """Axes of ``out`` along which ``operand`` was broadcast (None: unknown shapes); the last
    two are the matrix axes and never count."""
    samples = ctx.samples()
    a, y = samples.layout(operand), samples.layout(out)
    if a is None or y is None or len(a) < 2 or len(a) > len(y):
        return None
    lead = len(y) - len(a)
    axes = list(range(lead))
    for i, d in enumerate(a[:-2]):
        if d != y[lead + i]:
            if d != 1:
                return None
            axes.append(lead + i)
    return axes


def check(ctx: EmitContext, node: gs.Node, need: str) -> str | None:
    """Both operands of known shape; relevance only at attention mixing, V not broadcast."""
    y = node.outputs[0].name
    if any(_broadcast_axes(ctx, t.name, y) is None for t in node.inputs):
        return "MatMul of two tensors of unknown or incompatible shapes"
    if need == "vjp":
        return None
    if not is_attention(ctx.view, node):
        return ("MatMul of two tensors that is not attention mixing (its first operand is not "
                "softmax probabilities)")
    if _broadcast_axes(ctx, node.inputs[1].name, y):
        return "attention mixing with a broadcast V"
    return ctx.samples().reduction_problem(y)


def describe(ctx: EmitContext, node: gs.Node) -> str:
    if is_attention(ctx.view, node):
        return RELEVANCE_NAME
    return "product of two tensors: VJP only (feeds a gate)"


def _swap_last(ctx: EmitContext, name: str) -> str:
    """``name`` with its last two axes swapped."""
    layout = ctx.samples().layout(name)
    rank = len(layout) if layout is not None else ctx.view.rank(name)
    perm = [*range(rank - 2), rank - 1, rank - 2]
    return ctx.em.op("Transpose", [name], "swap_last", perm=perm)


def _unbroadcast(ctx: EmitContext, flow: str, operand: str, out: str) -> str:
    """``flow`` summed over the axes ``operand`` was broadcast along, shaped like it."""
    axes = _broadcast_axes(ctx, operand, out) or []
    if not axes:
        return flow
    em = ctx.em
    total = em.op("ReduceSum", [flow, em.ints(axes, "axes")], "matmul_unbroadcast", keepdims=1)
    return em.op("Reshape", [total, em.op("Shape", [operand], "operand_shape")], "unbroadcast")


def vjp(ctx: EmitContext, node: gs.Node, g: str) -> Flows:
    """``dA = g @ Bᵀ``, ``dB = Aᵀ @ g``."""
    em, y = ctx.em, node.outputs[0].name
    a, b = node.inputs[0].name, node.inputs[1].name
    da = em.op("MatMul", [g, _swap_last(ctx, b)], "matmul_da")
    db = em.op("MatMul", [_swap_last(ctx, a), g], "matmul_db")
    return {0: _unbroadcast(ctx, da, a, y), 1: _unbroadcast(ctx, db, b, y)}


def relevance(ctx: EmitContext, node: gs.Node, r: str) -> Flows:
    """``R_V = V ⊙ (Pᵀ @ sdiv_ε(R, P @ V))``."""
    em, samples = ctx.em, ctx.samples()
    p, v, y = node.inputs[0].name, node.inputs[1].name, node.outputs[0].name
    layout = samples.layout(y)
    assert layout is not None
    ratio = per_sample.sdiv_eps(em, r, y, layout, samples.single_sample())
    back = _unbroadcast(ctx, em.op("MatMul", [_swap_last(ctx, p), ratio], "attn_back"), v, y)
    return {1: em.op("Mul", [v, back], "attn_R_V")}
