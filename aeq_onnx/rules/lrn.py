"""LRN (local response normalisation across channels, AlexNet/CaffeNet/GoogLeNet-era models):
relevance passes through unchanged (spec 4.5 treats every normalisation so, like
BatchNormalization: docs/choices.md, "LRN passes relevance through"); the VJP is exact.

With ``B[c, c'] = 1`` for ``c - floor((size-1)/2) <= c' <= c + ceil((size-1)/2)`` (the channel
window of ONNX's LRN) and ``d = bias + alpha/size · B x²`` (along the channel axis)::

    y  = x · d^(-beta)
    dX = g · d^(-beta) - (2·alpha·beta/size) · x · Bᵀ( g · x · d^(-beta-1) )

``B x²`` and ``Bᵀ t`` are 1x1 convolutions with the constant band matrix as weights.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


def band(channels: int, size: int) -> np.ndarray:
    """``B[c, c'] = 1`` where ``c'`` lies in the LRN window of channel ``c`` (ONNX's LRN:
    ``floor((size-1)/2)`` channels before, ``ceil((size-1)/2)`` after)."""
    before, after = (size - 1) // 2, size // 2
    c = np.arange(channels)
    offset = c[None, :] - c[:, None]
    return ((offset >= -before) & (offset <= after)).astype(np.float32)


@register("LRN")
class LRNRule(PassThrough):
    """LRN: pass-through relevance (4.5); ``dX`` by the band-matrix formula above."""

    vjp_name = "g·d^-β - (2αβ/size)·x·Bᵀ(g·x·d^(-β-1))"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if int(node.attrs["size"]) % 2 == 0:
            return "LRN with an even size (onnxruntime runs odd sizes only)"
        x = node.inputs[0].name
        if ctx.view.rank(x) != 4:
            return "LRN on a tensor of rank other than 4 (onnxruntime runs rank 4 only)"
        if need == "relevance":
            return None
        shape = ctx.view.shape(x)
        if shape is None or not isinstance(shape[1], int):
            return "LRN with a dynamic channel count"
        return None

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        em, x, g = ctx.em, node.inputs[0].name, single(grad)
        size = int(node.attrs["size"])
        alpha = float(node.attrs.get("alpha", 1e-4))
        beta = float(node.attrs.get("beta", 0.75))
        bias = float(node.attrs.get("bias", 1.0))
        channels = int(ctx.view.shape(x)[1])  # type: ignore[index,arg-type]  # checked
        matrix = band(channels, size)
        window = em.const(matrix.reshape(channels, channels, 1, 1), "lrn_band")
        window_t = em.const(matrix.T.copy().reshape(channels, channels, 1, 1), "lrn_band_t")
        kernel = [1, 1]
        squares = em.op("Conv", [em.op("Mul", [x, x], "lrn_x2"), window], "lrn_sum",
                        kernel_shape=kernel)
        d = em.op("Add", [em.op("Mul", [squares, em.const(alpha / size)], "lrn_scaled"),
                          em.const(bias)], "lrn_d")
        direct = em.op("Mul", [g, em.op("Pow", [d, em.const(-beta)], "lrn_d_pow")], "lrn_direct")
        t = em.op("Mul", [em.op("Mul", [g, x], "lrn_gx"),
                          em.op("Pow", [d, em.const(-beta - 1.0)], "lrn_d_pow1")], "lrn_t")
        spread = em.op("Conv", [t, window_t], "lrn_back", kernel_shape=kernel)
        cross = em.op("Mul", [em.op("Mul", [x, spread], "lrn_x_back"),
                              em.const(2.0 * alpha * beta / size)], "lrn_cross")
        return {0: em.op("Sub", [direct, cross], "lrn_vjp")}
