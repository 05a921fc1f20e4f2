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


def _named_axes(node: gs.Node, view: GraphView, rank: int) -> list[int]:
    """The node's ``axes``/``axis`` attribute, or its constant second input where it has no
    ``axis`` (a Reduce from opset 18), non-negative."""
    named = node.attrs.get("axes", node.attrs.get("axis"))
    if named is None and "axis" not in node.attrs and len(node.inputs) > 1 and (
            node.inputs[1].name and view.is_constant(node.inputs[1].name)):
        named = [int(v) for v in view.constant(node.inputs[1].name).reshape(-1)]
    named = named if isinstance(named, list) else [named] if named is not None else []
    return sorted({int(n) % rank for n in named})


def _removed_axes(view: GraphView, node: gs.Node, layout: Layout, out: Layout
                  ) -> list[int] | None:
    """The axes of ``layout`` that ``out`` no longer has: of equal rank, those now of size 1;
    of lower rank, the node's named axes if removing them leaves ``out``, else the one axis
    whose removal does."""
    if len(out) == len(layout):
        return [a for a in range(len(layout)) if out[a] == 1 and layout[a] != 1]
    named = _named_axes(node, view, len(layout))
    kept = tuple(d for a, d in enumerate(layout) if a not in named)
    if named and kept == tuple(out):
        return named
    found = [a for a in range(len(layout)) if (*layout[:a], *layout[a + 1:]) == tuple(out)]
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
    axes = _removed_axes(view, node, layout, out) or []
    sizes = [layout[a] for a in axes]
    if not axes or k in axes or rank - 1 in axes or any(not isinstance(d, int) for d in sizes):
        return None
    return tuple(axes) if math.prod(sizes) > 1 else None  # type: ignore[arg-type]


def _decides(view: GraphView, node: gs.Node, last: int) -> int | None:
    """``last`` where a ``token`` op or ``dense`` layer reads a tensor, 1 where a conv does."""
    traits = view.traits(node)
    if TOKEN in traits or DENSE in traits:
        return last
    return 1 if LINEAR in traits else None


def channel_axis(view: GraphView, layouts: Layouts, name: str, depth: int = 6) -> int:
    """The channel axis of ``name``: the last one where a ``token`` op (LayerNormalization)
    or a ``dense`` layer (MatMul/Gemm with a constant weight) reads it (channels-last tokens),
    1 where a convolution does (NCHW). Looks through the ops that keep the layout up to
    ``depth`` nodes down, then up (a split read only by the mean over tokens); else 1."""
    layout = layouts.layout(name)
    last = (len(layout) if layout is not None else 0) - 1
    for downward in (True, False):
        frontier, seen = [name], set()
        for _ in range(depth):
            following: list[str] = []
            for tensor in frontier:
                producer = view.producer(tensor)
                nodes = view.consumers(tensor) if downward else (
                    [producer] if producer is not None else [])
                for node in nodes:
                    if id(node) in seen:
                        continue
                    seen.add(id(node))
                    found = _decides(view, node, last)
                    if found is not None:
                        return found
                    following.extend(_same_layout(layouts, node, layout, downward))
            frontier = following
    return 1


def _same_layout(layouts: Layouts, node: gs.Node, layout: Layout | None, downward: bool
                 ) -> list[str]:
    """The node's outputs (``downward``) or inputs with ``layout``: where to look next."""
    tensors = node.outputs if downward else node.inputs
    return [t.name for t in tensors if t.name and layouts.layout(t.name) == layout]


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
