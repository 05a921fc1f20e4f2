"""MatMulInteger: the MatMul of ``a - a_zero_point`` and ``b - b_zero_point`` in int32 (dynamic
quantization scales it afterwards); rules of MatMul (spec 4.4) in integer units."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import IntegerDelegating, StandIn, integer_units, stand_in


@register("MatMulInteger", since=10)
class MatMulIntegerRule(IntegerDelegating):
    """``y = (a - a_zp) @ (b - b_zp)`` with a constant b: MatMul's rules; ``dA`` per unit of
    a's float view."""

    traits = frozenset({"linear", "dense"})

    float_op = "MatMul"
    data_inputs = (0,)
    vjp_name = "as MatMul in integer units, / a_scale"
    relevance_name = "as MatMul in integer units"

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        a = integer_units(ctx, node, 0, 2, "matmulint_a")
        b = integer_units(ctx, node, 1, 3, "matmulint_b", axis=-1)
        return stand_in(node, "MatMul", [(a, 0), (b, 1)])
