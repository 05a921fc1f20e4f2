"""Structure ops that only move values: gradient and relevance are reshaped back (spec 4.9)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import sdiv
from aeq_onnx.ir.layout import Sample
from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


@register("Flatten", "Reshape", "Squeeze", "Unsqueeze")
class ReshapeRule(OpRule):
    """Flatten, Reshape, Squeeze, Unsqueeze: ``dX = reshape(g, shape(X))``,
    ``R_in = reshape(R, shape(X))``."""

    data_inputs = (0,)
    vjp_name = "reshape back"
    relevance_name = "reshape back (4.9)"

    def _back(self, ctx: EmitContext, node: gs.Node, flow: str) -> Flows:
        x = node.inputs[0].name
        shape = ctx.em.op("Shape", [x], "x_shape")
        return {0: ctx.em.op("Reshape", [flow, shape], "reshape_back")}

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return self._back(ctx, node, single(grad))

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return self._back(ctx, node, single(rel))


class _Mapping(OpRule):
    """An op that only moves values: gradient and relevance take the same way back."""

    data_inputs = (0,)

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        """Emit the transpose of the value mapping applied to the output flows."""
        raise NotImplementedError

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: self.back(ctx, node, grad)}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {0: self.back(ctx, node, rel)}


def _zeros(ctx: EmitContext, like: str) -> str:
    """A float32 zero tensor with the runtime shape of ``like``."""
    em = ctx.em
    value = onnx.helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [0.0])
    return em.op("ConstantOfShape", [em.op("Shape", [like], "like_shape")], "zeros", value=value)


def _constant_ints(ctx: EmitContext, node: gs.Node, index: int) -> list[int] | None:
    """A constant int input as a list ([] when absent, None when not a constant)."""
    if len(node.inputs) <= index or not node.inputs[index].name:
        return []
    name = node.inputs[index].name
    if not ctx.view.is_constant(name):
        return None
    return [int(v) for v in ctx.view.constant(name).reshape(-1)]


@register("Transpose")
class TransposeRule(_Mapping):
    """``y = transpose(x, perm)``: ``dX = transpose(g, perm⁻¹)``,
    ``R_in = transpose(R, perm⁻¹)``."""

    vjp_name = "inverse transpose"
    relevance_name = "inverse transpose (4.9)"

    def _perm(self, ctx: EmitContext, node: gs.Node) -> list[int]:
        rank = ctx.view.rank(node.inputs[0].name)
        return [int(p) for p in node.attrs.get("perm", list(range(rank))[::-1])]

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        inverse = [int(i) for i in np.argsort(self._perm(ctx, node))]
        return ctx.em.op("Transpose", [single(flows)], "transpose_back", perm=inverse)


@register("Pad", since=11)
class PadRule(_Mapping):
    """Constant-mode Pad with constant, non-negative pads: ``dX`` and ``R_in`` crop the flow
    back to X (Slice from ``pad_begin`` to ``pad_begin + dim``)."""

    vjp_name = "crop"
    relevance_name = "crop (4.9)"

    def _pads(self, ctx: EmitContext, node: gs.Node) -> tuple[list[int], list[int]] | None:
        """(axes, begin pads) with every pad checked; None when not constant."""
        pads, axes = _constant_ints(ctx, node, 1), _constant_ints(ctx, node, 3)
        if pads is None or axes is None:
            return None
        rank = ctx.view.rank(node.inputs[0].name)
        axes = [a % rank for a in axes] or list(range(rank))
        return axes, pads

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        mode = node.attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            return f"Pad in {mode} mode"
        found = self._pads(ctx, node)
        if found is None:
            return "Pad with non-constant pads or axes"
        axes, pads = found
        if min(pads, default=0) < 0:
            return "Pad with negative pads"
        if any(p and axes[i % len(axes)] == 0 for i, p in enumerate(pads)):
            return "Pad of the batch axis"
        return None

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        axes, pads = self._pads(ctx, node) or ([], [])
        dims = ctx.view.static_dims(node.inputs[0].name)
        keep = [i for i, a in enumerate(axes) if a != 0]
        starts = [pads[i] for i in keep]
        ends = [pads[i] + dims[axes[i] - 1] for i in keep]
        em = ctx.em
        return em.op("Slice", [single(flows), em.ints(starts, "starts"), em.ints(ends, "ends"),
                               em.ints([axes[i] for i in keep], "axes")], "pad_crop")


@register("Slice", since=10)
class SliceRule(_Mapping):
    """Slice with constant starts/ends/axes/steps (not along the sample axis): the flow is
    scattered back into zeros of X's shape (ScatterElements on the flattened sample; a tensor
    whose sample axis is not first is transposed to put it first and back)."""

    vjp_name = "scatter into zeros"
    relevance_name = "scatter into zeros (4.9)"

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
        args = [_constant_ints(ctx, node, i) for i in range(1, 5)]
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
        zeros = em.op("Reshape", [_zeros(ctx, x), em.ints([0, -1], "flat")], "zeros_flat")
        scattered = em.op("ScatterElements", [zeros, indices, flat], "slice_scatter", axis=1)
        out = em.op("Reshape", [scattered, em.op("Shape", [x], "x_shape")], "slice_back")
        if moved:
            out = em.op("Transpose", [out], "slice_restore",
                        perm=[int(a) for a in np.argsort(order)])
        return out


@register("Split", since=13)
class SplitRule(_Mapping):
    """Split (any number of outputs, constant sizes): the outputs' flows are concatenated
    along the axis, with zeros for outputs that carry no flow."""

    vjp_name = "concat (zeros where no flow)"
    relevance_name = "concat, zeros where no flow (4.9)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        axis = int(node.attrs.get("axis", 0))
        if ctx.samples().along_sample_axis(node.inputs[0].name, axis):
            return "Split along the sample axis"
        return None

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        parts = [f if f is not None else _zeros(ctx, t.name)
                 for f, t in zip(flows, node.outputs, strict=True)]
        axis = int(node.attrs.get("axis", 0)) % ctx.view.rank(node.inputs[0].name)
        return ctx.em.op("Concat", parts, "split_back", axis=axis)


RESIZE_MODES = ("nearest", "linear")


def _resize_matrix(node: gs.Node, length: int, out: int, scale: float | None) -> np.ndarray:
    """The ``[out, length]`` matrix of the node's 1-D resize along one axis, read off the ONNX
    reference evaluator applied to the identity (every supported mode is separable)."""
    from onnx.reference import ReferenceEvaluator

    attrs = {k: v for k, v in node.attrs.items()
             if k in ("mode", "coordinate_transformation_mode", "nearest_mode",
                      "cubic_coeff_a", "exclude_outside", "extrapolation_value")}
    if scale is not None:
        arg, value = "scales", np.asarray([1.0, 1.0, scale], np.float32)
    else:
        arg, value = "sizes", np.asarray([length, 1, out], np.int64)
    inputs = ["x", "", "scales", ""] if arg == "scales" else ["x", "", "", "sizes"]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Resize", inputs, ["y"], **attrs)], "resize_1d",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [length, 1, length])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(value, arg)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    eye = np.eye(length, dtype=np.float32)[:, None, :]
    outputs = ReferenceEvaluator(model).run(None, {"x": eye})
    result = np.asarray(outputs[0])  # type: ignore[index]
    return np.ascontiguousarray(result[:, 0, :].T)


@register("Resize", since=11)
class ResizeRule(_Mapping):
    """Resize (nearest or linear, constant scales/sizes, integer upsampling factors, spatial
    axes of a rank-3/4 tensor): a linear map ``y = M_h · x · M_wᵀ`` per sample and channel,
    whose matrices come from the ONNX reference evaluator. ``VJP(g) = M_hᵀ · g · M_w`` (two
    MatMuls); relevance by the z-rule through it (spec 4.9): ``R_in = x · VJP(sdiv(R,
    resize(x)))`` on X itself (not x+). Upsample (opset < 10) is converted to Resize by the
    opset pass (nearest only: linear gets the wrong coordinate transform there)."""

    vjp_name = "MatMul by the resize matrices"
    relevance_name = "z-rule through the VJP (4.9)"

    def _scales(self, ctx: EmitContext, node: gs.Node) -> list[float | None] | None:
        """Per-spatial-axis scales (None where the node gives sizes); None: refuse."""
        names = [node.inputs[i].name if len(node.inputs) > i else "" for i in (2, 3)]
        if any(n and not ctx.view.is_constant(n) for n in names):
            return None
        rank = ctx.view.rank(node.inputs[0].name)
        scales = ctx.view.constant(names[0]).reshape(-1) if names[0] else np.zeros(0)
        if scales.size:
            if list(scales[:2]) != [1.0, 1.0] or scales.size != rank:
                return None
            return [float(s) for s in scales[2:]]
        return [None] * (rank - 2)

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        mode = node.attrs.get("mode", "nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in RESIZE_MODES:
            return f"Resize in {mode} mode"
        transform = node.attrs.get("coordinate_transformation_mode", "half_pixel")
        if transform in ("tf_crop_and_resize", b"tf_crop_and_resize"):
            return "Resize with tf_crop_and_resize"
        if int(node.attrs.get("antialias", 0)) or node.attrs.get("axes"):
            return "Resize with antialias or axes"
        if ctx.view.rank(node.inputs[0].name) not in (3, 4) or self._scales(ctx, node) is None:
            return "Resize of other than the spatial axes of a rank-3/4 tensor, or not constant"
        x_dims = ctx.view.static_dims(node.inputs[0].name)
        y_dims = ctx.view.static_dims(node.outputs[0].name)
        if y_dims[0] != x_dims[0]:
            return "Resize of the channel axis"
        if any(o % i for i, o in zip(x_dims[1:], y_dims[1:], strict=True)):
            return "Resize by a non-integer factor"
        return None

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        em, flow = ctx.em, single(flows)
        x_dims = ctx.view.static_dims(node.inputs[0].name)
        y_dims = ctx.view.static_dims(node.outputs[0].name)
        scales = self._scales(ctx, node) or []
        spatial = len(x_dims) - 1
        for i, scale in enumerate(scales):
            length, out = x_dims[1 + i], y_dims[1 + i]
            matrix = _resize_matrix(node, length, out, scale)
            if out == length and np.array_equal(matrix, np.eye(length)):
                continue
            if i == spatial - 1:  # last axis: g · M
                flow = em.op("MatMul", [flow, em.const(matrix, "resize_m")], "resize_back_w")
            else:  # second-to-last: Mᵀ · g
                flow = em.op("MatMul", [em.const(matrix.T.copy(), "resize_mt"), flow],
                             "resize_back_h")
        return flow

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        em, x = ctx.em, node.inputs[0].name
        ratio = sdiv(em, single(rel), node.outputs[0].name)
        return {0: em.op("Mul", [x, self.back(ctx, node, [ratio])], "resize_R_in")}
