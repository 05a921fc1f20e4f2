"""ConvInteger: the Conv of ``x - x_zero_point`` and ``w - w_zero_point`` in int32 (dynamic
quantization scales it afterwards); rules of Conv (spec 4.1-4.3) in integer units."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import IntegerDelegating, StandIn, integer_units, stand_in


@register("ConvInteger", since=10)
class ConvIntegerRule(IntegerDelegating):
    """``y = conv(x - x_zp, w - w_zp)``: Conv's rules; ``dX`` per unit of x's float view."""

    traits = frozenset({"linear"})

    float_op = "Conv"
    data_inputs = (0,)
    vjp_name = "as Conv in integer units, / x_scale"
    relevance_name = "as Conv in integer units"

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        x = integer_units(ctx, node, 0, 2, "convint_x")
        w = integer_units(ctx, node, 1, 3, "convint_w", axis=0)
        return stand_in(node, "Conv", [(x, 0), (w, None)], node.attrs)
