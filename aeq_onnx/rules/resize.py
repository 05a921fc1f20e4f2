"""Resize (nearest or linear, constant integer upsampling of the spatial axes): a linear map per
sample and channel; VJP by its transposed matrices, relevance by the z-rule through it (spec
4.9). Upsample is converted to Resize before the rules see it."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import sdiv
from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.mapping import Mapping

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
class ResizeRule(Mapping):
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
