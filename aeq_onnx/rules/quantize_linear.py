"""QuantizeLinear: in the float view (docs/deployed.md) the identity with saturation. Its output
is read dequantized, so relevance passes through (spec 4.5, as for Clip); the VJP is
straight-through: rounding is the identity, saturation stops the gradient as a Clip's bounds
do, ``dX = g · 1[qmin < q < qmax]``."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.quantized import through_quantization
from aeq_onnx.rules.registry import register


@register("QuantizeLinear", since=10)
class QuantizeLinearRule(OpRule):
    """``q = saturate(round(x / scale) + zero_point)``: ``dX = g · 1[qmin < q < qmax]``,
    relevance passes through."""

    data_inputs = (0,)
    vjp_name = "straight-through: g·1[qmin<q<qmax]"
    relevance_name = "pass-through (4.5)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: through_quantization(ctx, node.outputs[0].name, single(grad))}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {0: single(rel)}
