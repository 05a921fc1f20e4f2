"""Slice with constant arguments (not on the batch axis): gradient and relevance are scattered
back into zeros of the input's shape (spec 4.9)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.mapping import Mapping, constant_ints, zeros_like


@register("Slice", since=10)
class SliceRule(Mapping):
    """Slice with constant starts/ends/axes/steps (not on the batch axis): the flow is
    scattered back into zeros of X's shape (ScatterElements on the flattened sample)."""

    vjp_name = "scatter into zeros"
    relevance_name = "scatter into zeros (4.9)"

    def _taken(self, ctx: EmitContext, node: gs.Node) -> np.ndarray | None:
        """Flat per-sample indices of the sliced elements, in output order (None: refuse)."""
        args = [constant_ints(ctx, node, i) for i in range(1, 5)]
        if any(a is None for a in args):
            return None
        starts, ends, axes, steps = (a or [] for a in args)
        dims = ctx.view.static_dims(node.inputs[0].name)
        rank = len(dims) + 1
        axes = [a % rank for a in axes] or list(range(len(starts)))
        steps = steps or [1] * len(starts)
        if 0 in axes or 0 in steps:
            return None
        index: list[slice] = [slice(None)] * len(dims)
        for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
            index[axis - 1] = slice(start, end, step)
        return np.arange(int(np.prod(dims)), dtype=np.int64).reshape(dims)[tuple(index)]

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if self._taken(ctx, node) is None:
            return "Slice with non-constant arguments, a zero step or on the batch axis"
        return None

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        em, x = ctx.em, node.inputs[0].name
        taken = self._taken(ctx, node)
        assert taken is not None
        flat = em.op("Reshape", [single(flows), em.ints([0, -1], "flat")], "slice_flat")
        indices = em.op("Expand", [em.const(taken.reshape(1, -1), "slice_idx"),
                                   em.op("Shape", [flat], "flat_shape")], "slice_indices")
        blank = em.op("Reshape", [zeros_like(ctx, x), em.ints([0, -1], "flat")], "zeros_flat")
        scattered = em.op("ScatterElements", [blank, indices, flat], "slice_scatter", axis=1)
        return em.op("Reshape", [scattered, em.op("Shape", [x], "x_shape")], "slice_back")
