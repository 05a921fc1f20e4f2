"""Every tensor's layout (:mod:`aeq_onnx.ir.layout`) over one graph view, and what the rules
ask of it: the sample axis, and whether a per-sample reduction can run there (ae-tokens T1).

Per-sample sums, bounds and normalisations run over every axis but the sample axis, wherever
that axis is; on a merged axis (``[N·H, T, d]``) the tensor is viewed as ``[H, N, ...]`` split
apart first (:mod:`aeq_onnx.ir.per_sample`). Where the sample index is lost (a reshape that
mixes it with a dim of unknown size, a gather along it, an op this module does not know) a
per-sample reduction is refused with the node's name; local rules do not care.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.ir import layout_ops
from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.layout import Dim, Layout, Sample, Values, sample_axis


class Layouts:
    """Every tensor's layout and the known values of small int tensors, for one graph view."""

    def __init__(self, view: GraphView) -> None:
        self.view = view
        self.layouts: dict[str, Layout | None] = {}
        self.values: dict[str, Values] = {}
        #: The model input's batch size when it is static (then no dim is a Sample).
        self.static_batch: int | None = None
        for name in view.data_inputs():
            dims = self.from_onnx(name)
            if dims:
                self.static_batch = dims[0] if isinstance(dims[0], int) else None
                first: Dim = dims[0] if self.static_batch is not None else Sample()
                self.layouts[name] = (first, *dims[1:])
        for node in view.nodes:
            self._infer(node)

    def from_onnx(self, name: str) -> Layout | None:
        """What onnx's shape inference says: static dims as ints, the rest None."""
        shape = self.view.shape(name)
        if shape is None:
            return None
        return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)

    def layout(self, name: str) -> Layout | None:
        """The tensor's layout (constants: their static shape)."""
        if name in self.layouts:
            return self.layouts[name]
        tensor = self.view.tensors.get(name)
        if isinstance(tensor, gs.Constant):
            return tuple(int(d) for d in tensor.shape)
        return self.from_onnx(name)

    def value(self, name: str) -> Values | None:
        """The entries of a small int tensor (None when unknown or not such a tensor)."""
        if name in self.values:
            return self.values[name]
        tensor = self.view.tensors.get(name)
        if isinstance(tensor, gs.Constant) and tensor.dtype is not None and (
                np.dtype(tensor.dtype).kind in "iu" and math.prod(tensor.shape) <= 64):
            array = np.asarray(self.view.constant(name)).reshape(-1)
            self.values[name] = tuple(int(a) for a in array)
            return self.values[name]
        return None

    def _infer(self, node: gs.Node) -> None:
        mine, values = layout_ops.infer(self, node)
        for i, out in enumerate(node.outputs):
            if not out.name:
                continue
            self.layouts[out.name] = _merge(mine[i] if i < len(mine) else None,
                                            self.from_onnx(out.name))
            if i < len(values) and values[i] is not None:
                self.values[out.name] = values[i]  # type: ignore[assignment]

    # ------------------------------------------------------------------ what rules ask

    def sample_axis(self, name: str) -> int | None:
        """The axis holding the sample index (None: unknown, or a static-batch model)."""
        return sample_axis(self.layout(name))

    def single_sample(self) -> bool:
        """True for a model whose input batch is statically 1: a sample is the whole tensor."""
        return self.static_batch == 1

    def along_sample_axis(self, name: str, axis: int) -> bool:
        """True when ``axis`` of ``name`` holds (part of) the sample index, or may."""
        layout = self.layout(name)
        if self.single_sample():
            return False
        if layout is None or sample_axis(layout) is None:  # unknown: the classic batch axis
            shape = self.view.shape(name)
            return shape is not None and axis % max(len(shape), 1) == 0
        return axis % len(layout) == sample_axis(layout)

    def reduction_problem(self, name: str) -> str | None:
        """Why a per-sample sum, bound or normalisation over ``name`` cannot be emitted."""
        if self.single_sample():
            return None
        layout = self.layout(name)
        k = sample_axis(layout)
        if layout is None or k is None:
            return (f"tensor '{name}' needs a per-sample reduction, but where its sample axis "
                    "lies is unknown (the batch axis was merged with a dim of unknown size, "
                    "or moved by an op the layout tracking does not know)")
        dim = layout[k]
        if isinstance(dim, Sample) and dim.merged and any(
                not isinstance(d, int) for d in layout[k + 1:]):
            return (f"tensor '{name}' needs a per-sample reduction over its axis {k}, where the "
                    "sample index is merged with other axes, and the dims after it are not "
                    "static")
        return None

    def fill_static_dims(self) -> None:
        """Write the static dims found here into the view's tensors where onnx's shape
        inference left them unknown (the sample dim keeps onnx's symbol)."""
        for name, layout in self.layouts.items():
            tensor = self.view.tensors.get(name)
            if layout is None or tensor is None or isinstance(tensor, gs.Constant):
                continue
            shape = self.view.shape(name)
            if shape is None or len(shape) != len(layout):
                continue
            filled = [d if isinstance(d, int) or not isinstance(mine, int) else mine
                      for d, mine in zip(shape, layout, strict=True)]
            if filled != list(shape):
                tensor.shape = filled


def _merge(mine: Layout | None, onnx_dims: Layout | None) -> Layout | None:
    """Our layout, with static dims onnx knows filled in where ours are unknown."""
    if mine is None:
        return None
    if onnx_dims is None or len(onnx_dims) != len(mine):
        return mine
    return tuple(o if m is None and o is not None else m for m, o in zip(mine, onnx_dims,
                                                                        strict=True))
