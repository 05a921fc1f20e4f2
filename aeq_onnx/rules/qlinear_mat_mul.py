"""QLinearMatMul: the MatMul of the dequantized operands, its output quantized; rules of MatMul
(spec 4.4) over the float view, straight-through at the output quantization."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import Delegating, StandIn, activation, dequantized, stand_in


@register("QLinearMatMul", since=10)
class QLinearMatMulRule(Delegating):
    """``y = Q(DQ(a) @ DQ(b))`` with a constant b (per column): MatMul's rules."""

    traits = frozenset({"linear", "dense"})

    float_op = "MatMul"
    data_inputs = (0,)
    vjp_name = "as MatMul (DQ(B)^T), straight-through at Q"
    relevance_name = "as MatMul over the dequantized view"

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        a = activation(ctx, node, 0, "qmatmul_a")
        b = dequantized(ctx, node, 3, 4, 5, "qmatmul_b", axis=-1)
        return stand_in(node, "MatMul", [(a, 0), (b, 3)])
