"""QLinearConv: the Conv of the dequantized input and weight, its output quantized; rules
of Conv (spec 4.1-4.3) over the float view, straight-through at the output quantization."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import (
    Delegating,
    StandIn,
    activation,
    bias,
    dequantized,
    stand_in,
)


@register("QLinearConv", since=10)
class QLinearConvRule(Delegating):
    """``y = Q(conv(DQ(x), DQ(w)) + b)``: Conv's VJP and relevance with ``DQ(x)``, ``DQ(w)``
    (per output channel) and ``b · x_scale · w_scale``; straight-through at the output's
    quantization (:func:`~aeq_onnx.rules.shared.quantized.through_quantization`)."""

    traits = frozenset({"linear"})

    float_op = "Conv"
    data_inputs = (0,)
    vjp_name = "as Conv (ConvTranspose with DQ(W)), straight-through at Q"
    relevance_name = "as Conv over the dequantized view"

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        x = activation(ctx, node, 0, "qconv_x")
        w = dequantized(ctx, node, 3, 4, 5, "qconv_w", axis=0)
        b = bias(ctx, node, 8, (1, 4))
        inputs = [(x, 0), (w, None), *([(b, None)] if b is not None else [])]
        return stand_in(node, "Conv", inputs, node.attrs)
