"""AveragePool (any padding mode): ``VJP(g) = convT(g / divisor, 1)`` depthwise, relevance by
the z-rule on x+ (spec 4.6); a windowed pool."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import Emitter
from aeq_onnx.ir.geometry import ConvGeometry
from aeq_onnx.rules.base import EmitContext, geometry
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.pooling import Back, Pool, pool_attrs


def _pool_geometry(ctx: EmitContext, node: gs.Node) -> ConvGeometry:
    return geometry(ctx, node, tuple(node.attrs["kernel_shape"]))


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
class AveragePoolRule(Pool):
    """AveragePool: ``VJP(g) = convT(g / divisor, 1)`` depthwise, for any padding mode."""

    vjp_name = "depthwise ConvTranspose of g/divisor"
    traits = frozenset({"window_pool", "sign_keeping"})

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        attrs = pool_attrs(node)
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
