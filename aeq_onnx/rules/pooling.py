"""Pooling: exact VJPs, and the z-rule on the positive part for relevance (spec 4.6)::

    xp = max(X, 0) + 1e-9;   R_in = xp · VJP_pool( sdiv(R, pool(xp)) )
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import Emitter, relu, zero_after
from aeq_onnx.ir.geometry import ConvGeometry
from aeq_onnx.rules.base import EmitContext, Flows, OpRule, geometry, single
from aeq_onnx.rules.registry import register

Back = Callable[[str], str]
EPS = 1e-9


def _window_problem(ctx: EmitContext, node: gs.Node) -> str | None:
    """Why a pool's window does not fit its (padded) input, or None."""
    out = ctx.view.shape(node.outputs[0].name)
    if out is None or any(isinstance(d, int) and d < 1 for d in out[2:]):
        return f"{node.op} whose window does not fit its input (output shape {out})"
    return None


class _Pool(OpRule):
    """A pool as ``pool(x)`` and its VJP; relevance is the z-rule on ``xp``."""

    data_inputs = (0,)
    relevance_name = "z-rule on x+ (4.6)"

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        """Emit ``pool(x)`` and return it with a function emitting ``VJP_pool`` at ``x``."""
        raise NotImplementedError

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        _, back = self.pool_and_back(ctx, node, node.inputs[0].name)
        return {0: back(single(grad))}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        em = ctx.em
        eps = em.op("Add", [em.const(EPS), zero_after(em, single(rel))], "eps")  # once R is here
        xp = em.op("Add", [relu(em, node.inputs[0].name), eps], "xp")
        pooled, back = self.pool_and_back(ctx, node, xp)
        ratio = em.op("Div", [single(rel), pooled], "R_over_pool")  # pool(xp) >= 1e-9 > 0
        return {0: em.op("Mul", [xp, back(ratio)], "pool_R_in")}


def _pool_geometry(ctx: EmitContext, node: gs.Node) -> ConvGeometry:
    return geometry(ctx, node, tuple(node.attrs["kernel_shape"]))


def _pool_attrs(node: gs.Node) -> dict[str, object]:
    keep = ("kernel_shape", "strides", "pads", "dilations", "ceil_mode", "auto_pad",
            "count_include_pad", "storage_order")
    return {k: v for k, v in node.attrs.items() if k in keep}


@register("MaxPool", since=8)
class MaxPoolRule(_Pool):
    """MaxPool: the gradient goes to each window's arg-max (first index on ties)."""

    vjp_name = "scatter-add to the arg-max indices"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if int(node.attrs.get("storage_order", 0)):
            return "MaxPool with storage_order=1"
        return _window_problem(ctx, node)

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        pooled, indices = em.op_multi("MaxPool", [x], 2, "maxpool", **_pool_attrs(node))

        def back(g: str) -> str:
            shape = em.op("Shape", [x], "x_shape")
            flat = em.ints([-1], "flat")
            zeros = em.op("ConstantOfShape", [em.op("ReduceProd", [shape], "numel", keepdims=1)],
                          "zeros", value=onnx.helper.make_tensor("v", onnx.TensorProto.FLOAT,
                                                                  [1], [0.0]))
            scattered = em.op(
                "ScatterElements",
                [zeros, em.op("Reshape", [indices, flat]), em.op("Reshape", [g, flat])],
                "maxpool_scatter", axis=0, reduction="add",
            )
            return em.op("Reshape", [scattered, shape], "maxpool_vjp")

        return pooled, back


def _inverse_divisor(em: Emitter, geom: ConvGeometry, attrs: dict[str, object]) -> str:
    """``1/divisor`` per output position, a map that onnxruntime folds into a constant.

    ``divisor = window_sum(1) / AveragePool(1)`` reproduces the forward's own divisor for
    every padding, ``count_include_pad`` and ceil-mode setting.
    """
    ones_map = em.const(np.ones((1, 1, *geom.in_spatial), np.float32), "ones_map")
    ones_k = em.const(np.ones((1, 1, *geom.kernel), np.float32), "ones_k1")
    conv_attrs = {**geom.conv_attrs(), "group": 1, "pads": geom.floor_pads()}
    count = em.op("Conv", [ones_map, ones_k], "win_count", **conv_attrs)
    share = em.op("AveragePool", [ones_map], "avg_ones", **attrs)
    return em.op("Div", [share, count], "inv_divisor")


@register("AveragePool", since=7)
class AveragePoolRule(_Pool):
    """AveragePool: ``VJP(g) = convT(g / divisor, 1)`` depthwise, for any padding mode."""

    vjp_name = "depthwise ConvTranspose of g/divisor"

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        attrs = _pool_attrs(node)
        pooled = em.op("AveragePool", [x], "avgpool", **attrs)
        geom = _pool_geometry(ctx, node)
        channels = ctx.view.static_dims(node.inputs[0].name)[0]
        inv_divisor = _inverse_divisor(em, geom, attrs)
        ones_k = em.const(np.ones((channels, 1, *geom.kernel), np.float32), "ones_k")
        depthwise = ConvGeometry(geom.kernel, geom.strides, geom.pads, geom.dilations, channels,
                                 geom.in_spatial, geom.out_spatial)

        def back(g: str) -> str:
            scaled = em.op("Mul", [g, inv_divisor], "avg_scaled")
            return em.op("ConvTranspose", [scaled, ones_k], "avgpool_vjp",
                         **depthwise.transpose_attrs())

        return pooled, back


@register("GlobalAveragePool")
class GlobalAveragePoolRule(_Pool):
    """GlobalAveragePool: ``VJP(g) = expand(g) / (H·W)``."""

    vjp_name = "expand(g)/HW"

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        pooled = em.op("GlobalAveragePool", [x], "gap")
        area = float(np.prod(ctx.view.static_dims(node.inputs[0].name)[1:]))

        def back(g: str) -> str:
            spread = em.op("Expand", [g, em.op("Shape", [x], "x_shape")], "gap_expand")
            return em.op("Mul", [spread, em.const(1.0 / area)], "gap_vjp")

        return pooled, back


def reduce_axes(ctx: EmitContext, node: gs.Node) -> list[int] | None:
    """The reduced axes, non-negative and sorted (None when not a constant)."""
    rank = ctx.view.rank(node.inputs[0].name)
    axes_as_input = 13 if node.op == "ReduceSum" else 18  # ReduceSum moved axes to an input first
    if ctx.view.opset < axes_as_input or node.op not in ("ReduceMean", "ReduceMax", "ReduceSum"):
        axes = node.attrs.get("axes")
    elif len(node.inputs) > 1 and node.inputs[1].name:
        if not ctx.view.is_constant(node.inputs[1].name):
            return None
        axes = ctx.view.constant(node.inputs[1].name).tolist()
    else:
        axes = None
    if not axes:
        empty_is_noop = int(node.attrs.get("noop_with_empty_axes", 0))
        return [] if empty_is_noop else list(range(rank))
    return sorted(int(a) % rank for a in axes)


@register("ReduceMean")
class ReduceMeanRule(_Pool):
    """ReduceMean over non-batch axes: ``VJP(g) = expand(g) / count``."""

    vjp_name = "expand(g)/count"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        axes = reduce_axes(ctx, node)
        if axes is None:
            return "ReduceMean with non-constant axes"
        if 0 in axes:
            return "ReduceMean over the batch axis"
        return None

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        axes = reduce_axes(ctx, node) or []
        keep = int(node.attrs.get("keepdims", 1))
        pooled = em.op("ReduceSum", [x, em.ints(axes, "axes")], "reduce_sum", keepdims=keep)
        dims = ctx.view.static_dims(node.inputs[0].name)
        count = float(np.prod([dims[a - 1] for a in axes]))
        pooled = em.op("Mul", [pooled, em.const(1.0 / count)], "reduce_mean")

        def back(g: str) -> str:
            if not keep:
                g = em.op("Unsqueeze", [g, em.ints(axes, "axes")], "unsqueeze")
            spread = em.op("Expand", [g, em.op("Shape", [x], "x_shape")], "mean_expand")
            return em.op("Mul", [spread, em.const(1.0 / count)], "mean_vjp")

        return pooled, back


def _trailing_block(ctx: EmitContext, node: gs.Node) -> list[int] | None:
    """ReduceMax's axes when they are constant, non-batch and a trailing block (else None)."""
    axes = reduce_axes(ctx, node)
    rank = ctx.view.rank(node.inputs[0].name)
    if not axes or 0 in axes or axes != list(range(axes[0], rank)):
        return None
    return axes


@register("ReduceMax")
class ReduceMaxRule(_Pool):
    """ReduceMax over trailing non-batch axes (H,W...): the gradient goes to the first
    arg-max of each reduced block (spec 4.6), ``VJP(g) = onehot(argmax(x)) · g``."""

    vjp_name = "g to the first arg-max"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if _trailing_block(ctx, node) is None:
            return "ReduceMax over axes that are not constant trailing non-batch axes"
        return None

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        axes = _trailing_block(ctx, node) or []
        dims = ctx.view.static_dims(node.inputs[0].name)
        lead, size = list(dims[: axes[0] - 1]), int(np.prod(dims[axes[0] - 1:]))
        flat = em.op("Reshape", [x, em.ints([0, *lead, size], "rmax_flat")], "rmax_x")
        last = len(lead) + 1
        if em.opset >= 18:
            top = em.op("ReduceMax", [flat, em.ints([last], "axes")], "rmax", keepdims=1)
        else:
            top = em.op("ReduceMax", [flat], "rmax", axes=[last], keepdims=1)
        out_dims = ctx.view.static_dims(node.outputs[0].name)
        pooled = em.op("Reshape", [top, em.ints([0, *out_dims], "rmax_out")], "reduce_max")
        first = em.op("ArgMax", [flat], "rmax_arg", axis=last, keepdims=1, select_last_index=0)
        iota = em.const(np.arange(size, dtype=np.int64), "rmax_iota")
        onehot = em.op("Cast", [em.op("Equal", [iota, first], "rmax_is_arg")], "rmax_onehot",
                       to=onnx.TensorProto.FLOAT)

        def back(g: str) -> str:
            column = em.op("Reshape", [g, em.ints([0, *lead, 1], "rmax_col")], "rmax_g")
            spread = em.op("Mul", [onehot, column], "rmax_spread")
            return em.op("Reshape", [spread, em.op("Shape", [x], "x_shape")], "rmax_vjp")

        return pooled, back
