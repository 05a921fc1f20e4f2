"""Token models (ae-tokens.md T2, T3): where the token axes end, which axis holds channels,
which model counts as a token model, and the gate patterns of attention and GELU.

*Token model*: a model with a ``LayerNormalization`` (the op, or the decomposed pattern that
the converter fuses into it) or an attention product (a MatMul of two tensors, one of them
softmax probabilities) between its input and its logits. Its constants (biases, position
embeddings) absorb their share of the relevance and its joins default to the token Add rule;
every other model keeps the CNN rules of ae-rules.md unchanged.
"""

from __future__ import annotations

import math

import onnx_graphsurgeon as gs

from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.layout import Sample, sample_axis
from aeq_onnx.ir.samples import Layouts

#: Ops an attention matrix may pass between its Softmax and the product with V.
PROBABILITY_PATH = frozenset({"Dropout", "Cast", "Reshape", "Transpose", "Identity",
                              "Squeeze", "Unsqueeze"})
#: Ops that may lie on a GELU gate between the signal and Erf/Tanh (with constants).
GATE_ARITHMETIC = frozenset({"Add", "Sub", "Mul", "Div", "Pow"})
GATE_CORES = frozenset({"Erf", "Tanh"})
REDUCING = frozenset({"ReduceMean", "ReduceMax", "ReduceSum"})


def _int_axes(node: gs.Node, layouts: Layouts, rank: int) -> list[int] | None:
    """A Reduce node's axes (attribute or constant input), non-negative."""
    if len(node.inputs) > 1 and node.inputs[1].name:
        values = layouts.value(node.inputs[1].name)
        if values is None or any(not isinstance(v, int) for v in values):
            return None
        axes = list(values)
    else:
        axes = list(node.attrs.get("axes", []))
    return sorted({int(a) % rank for a in axes  # type: ignore[arg-type]
                   }) or list(range(rank))


def collapse_axes(view: GraphView, layouts: Layouts, node: gs.Node) -> tuple[int, ...] | None:
    """The token axes that ``node`` removes from its data input ([N, T, C]: the class-token
    Gather/Slice, a mean over tokens), or None when it removes none. The sample axis must be
    known and unmerged, the input of rank >= 3; the last axis (channels of a token tensor)
    never counts, so a LayerNorm's own mean is no collapse."""
    if not node.inputs or not node.outputs:
        return None
    x = node.inputs[0].name
    layout = layouts.layout(x)
    k = sample_axis(layout)
    if layout is None or k is None or len(layout) < 3:
        return None
    s = layout[k]
    if isinstance(s, Sample) and s.merged:
        return None
    rank, out = len(layout), layouts.layout(node.outputs[0].name)
    if node.op == "Gather" and view.is_constant(node.inputs[1].name):
        axis = int(node.attrs.get("axis", 0)) % rank
        if view.constant(node.inputs[1].name).size == 1:
            axes = [axis]
        else:
            return None
    elif node.op == "Slice" and out is not None and len(out) == rank:
        axes = [a for a in range(rank) if out[a] == 1 and layout[a] != 1]
    elif node.op in REDUCING:
        axes = _int_axes(node, layouts, rank) or []
    else:
        return None
    sizes = [layout[a] for a in axes]
    if not axes or k in axes or rank - 1 in axes or any(not isinstance(d, int) for d in sizes):
        return None
    return tuple(axes) if math.prod(sizes) > 1 else None  # type: ignore[arg-type]


def channel_axis(view: GraphView, layouts: Layouts, name: str, depth: int = 6) -> int:
    """The channel axis of ``name``: the last one where a LayerNormalization normalises it or
    a MatMul/Gemm with a constant weight contracts it (channels-last tokens), else 1 (NCHW).
    Looks through elementwise consumers up to ``depth`` nodes down."""
    layout = layouts.layout(name)
    rank = len(layout) if layout is not None else 0
    frontier, seen = [name], set()
    for _ in range(depth):
        following: list[str] = []
        for tensor in frontier:
            for node in view.consumers(tensor):
                if id(node) in seen:
                    continue
                seen.add(id(node))
                if node.op == "LayerNormalization" or (
                        node.op in ("MatMul", "Gemm") and len(node.inputs) > 1
                        and view.is_constant(node.inputs[1].name)):
                    return rank - 1
                if node.op in ("Conv", "BatchNormalization", "GlobalAveragePool"):
                    return 1
                if node.op in ("Add", "Mul", "Sub", "Div", "Relu", "Gelu", "Identity"):
                    following.extend(t.name for t in node.outputs)
        frontier = following
    return 1


def token_axes(view: GraphView, layouts: Layouts, name: str) -> tuple[int, ...]:
    """The axes of a split tensor that AE's initial map averages its gradient over: every
    axis but the sample and the channel axis (none for a rank-2 tensor)."""
    layout = layouts.layout(name)
    if layout is None or len(layout) <= 2:
        return ()
    k = sample_axis(layout)
    k = 0 if k is None else k
    channels = channel_axis(view, layouts, name)
    return tuple(a for a in range(len(layout)) if a not in (k, channels))


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


def _scaled_root(view: GraphView, name: str) -> str:
    """``name`` with Mul/Div by constants stripped off (x·0.5 -> x)."""
    node = view.producer(name)
    while node is not None and node.op in ("Mul", "Div") and len(view.variable_inputs(node)) == 1:
        index = view.variable_inputs(node)[0]
        if node.op == "Div" and index != 0:
            break
        name = node.inputs[index].name
        node = view.producer(name)
    return name


def gelu_gate(view: GraphView, gate: str, signal: str, limit: int = 24) -> bool:
    """True when ``gate`` is GELU's gate of ``signal``: a function of signal's own source x
    through constants-only arithmetic around one Erf or Tanh (``0.5·(1+erf(x/√2))``, the tanh
    form with ``x + 0.044715·x³``)."""
    root = _scaled_root(view, signal)
    stack, seen, core = [gate], set[str](), False
    while stack and len(seen) < limit:
        name = stack.pop()
        if name in seen or view.is_constant(name) or _scaled_root(view, name) == root:
            continue
        seen.add(name)
        node = view.producer(name)
        if node is None:
            return False
        if node.op in GATE_CORES:
            core = True
        elif node.op not in GATE_ARITHMETIC:
            return False
        stack.extend(t.name for t in node.inputs if t.name)
    return core and not stack


def is_token_model(view: GraphView, nodes: list[gs.Node]) -> bool:
    """Whether ``nodes`` (the input-to-logits chain) hold a LayerNormalization or attention."""
    return any(n.op == "LayerNormalization" or is_attention(view, n) for n in nodes)
