"""QGemm (onnxruntime, com.microsoft): the Gemm of the dequantized operands, its output
quantized (or float without ``y_scale``); rules of Gemm (spec 4.4) over the float view."""

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


@register("QGemm")
class QGemmRule(Delegating):
    """``y = alpha · DQ(A) @ DQ(B)' + C · a_scale · b_scale``, quantized when ``y_scale`` is
    given: Gemm's rules with B dequantized per output channel."""

    traits = frozenset({"linear", "dense"})
    domains = frozenset({"com.microsoft"})

    float_op = "Gemm"
    data_inputs = (0,)
    vjp_name = "as Gemm (DQ(B)^T), straight-through at Q"
    relevance_name = "as Gemm over the dequantized view"

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        trans_b = int(node.attrs.get("transB", 0))
        a = activation(ctx, node, 0, "qgemm_a")
        b = dequantized(ctx, node, 3, 4, 5, "qgemm_b", axis=0 if trans_b else -1)
        c = bias(ctx, node, 6, (1, 4))
        attrs = {k: v for k, v in node.attrs.items() if k in ("alpha", "transA", "transB")}
        inputs = [(a, 0), (b, 3), *([(c, None)] if c is not None else [])]
        return stand_in(node, "Gemm", inputs, attrs)
