"""Token models (ae-tokens.md T2, T3): where the token axes end, which axis holds channels,
which model counts as a token model (what an op is: its traits, ``token`` and
``token_pool``; the patterns of attention and GELU gates are the rules', rules/shared/).

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
from aeq_onnx.ir.layout import Layout, Sample, sample_axis
from aeq_onnx.ir.samples import Layouts
from aeq_onnx.ir.traits import DENSE, LINEAR, TOKEN, TOKEN_POOL


def _removed_axes(node: gs.Node, layout: Layout, out: Layout) -> list[int] | None:
    """The axes of ``layout`` that ``out`` no longer has: of equal rank, those now of size 1;
    one axis less, the one whose removal leaves ``out`` (the node's ``axis``/``axes`` where
    several would)."""
    if len(out) == len(layout):
        return [a for a in range(len(layout)) if out[a] == 1 and layout[a] != 1]
    if len(out) != len(layout) - 1:
        return None
    found = [a for a in range(len(layout)) if (*layout[:a], *layout[a + 1:]) == tuple(out)]
    if len(found) > 1:
        named = node.attrs.get("axis", node.attrs.get("axes"))
        named = named if isinstance(named, list) else [named] if named is not None else []
        found = [a for a in found if a in [int(n) % len(layout) for n in named]]
    return found if len(found) == 1 else None


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
    if TOKEN_POOL not in view.traits(node) or out is None:
        return None
    axes = _removed_axes(node, layout, out) or []
    sizes = [layout[a] for a in axes]
    if not axes or k in axes or rank - 1 in axes or any(not isinstance(d, int) for d in sizes):
        return None
    return tuple(axes) if math.prod(sizes) > 1 else None  # type: ignore[arg-type]


def channel_axis(view: GraphView, layouts: Layouts, name: str, depth: int = 6) -> int:
    """The channel axis of ``name``: the last one where a ``token`` op (LayerNormalization)
    or a ``dense`` layer (MatMul/Gemm with a constant weight) reads it (channels-last tokens),
    else 1 (NCHW; a convolution reads it). Looks through consumers that keep the layout up to
    ``depth`` nodes down."""
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
                traits = view.traits(node)
                if TOKEN in traits or DENSE in traits:
                    return rank - 1
                if LINEAR in traits:
                    return 1
                if node.outputs and layouts.layout(node.outputs[0].name) == layout:
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


def is_token_model(view: GraphView, nodes: list[gs.Node]) -> bool:
    """Whether ``nodes`` (the input-to-logits chain) hold a ``token`` op (LayerNormalization,
    attention mixing)."""
    return any(TOKEN in view.traits(n) for n in nodes)
