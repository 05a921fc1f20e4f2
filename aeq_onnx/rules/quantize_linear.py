"""QuantizeLinear: in the float view (docs/deployed.md) the identity up to rounding. Its output
is read dequantized, so relevance passes through (spec 4.5, as for Clip); the VJP is
straight-through (rounding and saturation are the identity), except where the quantized range
starts at zero (zero point = the type's minimum): that quantization stands for the ReLU that
onnxruntime's quantizer removed before it, and values at zero get no gradient, as behind the
ReLU: ``dX = g · 1[q > qmin]``."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.quantized import through_quantization


@register("QuantizeLinear", since=10)
class QuantizeLinearRule(OpRule):
    """``q = saturate(round(x / scale) + zero_point)``: ``dX = g`` (``g · 1[q > qmin]`` for a
    range that starts at zero), relevance passes through."""

    traits = frozenset({"quantization", "sign_keeping"})
    domains = frozenset({"com.microsoft"})

    data_inputs = (0,)
    vjp_name = "straight-through: g (·1[q>qmin] for a range from 0)"
    relevance_name = "pass-through (4.5)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: through_quantization(ctx, node.outputs[0].name, single(grad))}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {0: single(rel)}
