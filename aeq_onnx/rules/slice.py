"""Slice with constant arguments (not along the sample axis; strided too): gradient and
relevance are scattered back into zeros of the input's shape (spec 4.9)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.ir.layout import Sample
from aeq_onnx.rules.base import EmitContext, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.mapping import Mapping, constant_ints, zeros_like


@register("Slice", since=10)
class SliceRule(Mapping):
    """Slice with constant starts/ends/axes/steps (not along the sample axis): the flow is
    scattered back into zeros of X's shape (ScatterElements on the flattened sample; a tensor
    whose sample axis is not first is transposed to put it first and back)."""

    vjp_name = "scatter into zeros"
    relevance_name = "scatter into zeros (4.9)"
    traits = frozenset({"token_pool"})

    def _order(self, ctx: EmitContext, node: gs.Node) -> list[int] | None:
        """X's axes with the sample axis first (None: its sample axis is merged or unknown
        where that matters)."""
        samples = ctx.samples()
        layout = samples.layout(node.inputs[0].name)
        k = samples.sample_axis(node.inputs[0].name)
        if layout is None:
            return None
        if k is None:
            k = 0
        dim = layout[k]
        if isinstance(dim, Sample) and dim.merged:
            return None
        return [k, *(a for a in range(len(layout)) if a != k)]

    def _taken(self, ctx: EmitContext, node: gs.Node) -> np.ndarray | None:
        """Flat per-sample indices of the sliced elements, in output order (None: refuse),
        over X's axes in :meth:`_order`."""
        args = [constant_ints(ctx, node, i) for i in range(1, 5)]
        order = self._order(ctx, node)
        layout = ctx.samples().layout(node.inputs[0].name)
        if any(a is None for a in args) or order is None or layout is None:
            return None
        starts, ends, axes, steps = (a or [] for a in args)
        rank = len(layout)
        axes = [a % rank for a in axes] or list(range(len(starts)))
        steps = steps or [1] * len(starts)
        dims = [d for d in (layout[a] for a in order[1:]) if isinstance(d, int)]
        if order[0] in axes or 0 in steps or len(dims) != rank - 1:
            return None
        index: list[slice] = [slice(None)] * len(dims)
        for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
            index[order.index(axis) - 1] = slice(start, end, step)
        return np.arange(int(np.prod(dims)), dtype=np.int64).reshape(dims)[tuple(index)]

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if self._taken(ctx, node) is None:
            return ("Slice with non-constant arguments, a zero step, on the sample axis or "
                    "on a tensor whose sample axis is merged")
        return None

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        em, x = ctx.em, node.inputs[0].name
        taken = self._taken(ctx, node)
        order = self._order(ctx, node)
        assert taken is not None and order is not None
        moved = order != sorted(order)
        flow = single(flows)
        if moved:
            flow = em.op("Transpose", [flow], "slice_sample_first", perm=order)
            x = em.op("Transpose", [x], "slice_x_first", perm=order)
        flat = em.op("Reshape", [flow, em.ints([0, -1], "flat")], "slice_flat")
        indices = em.op("Expand", [em.const(taken.reshape(1, -1), "slice_idx"),
                                   em.op("Shape", [flat], "flat_shape")], "slice_indices")
        blank = em.op("Reshape", [zeros_like(ctx, x), em.ints([0, -1], "flat")], "zeros_flat")
        scattered = em.op("ScatterElements", [blank, indices, flat], "slice_scatter", axis=1)
        out = em.op("Reshape", [scattered, em.op("Shape", [x], "x_shape")], "slice_back")
        if moved:
            out = em.op("Transpose", [out], "slice_restore",
                        perm=[int(a) for a in np.argsort(order)])
        return out
