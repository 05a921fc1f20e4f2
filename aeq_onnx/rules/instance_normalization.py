"""InstanceNormalization with constant scale and bias: relevance passes through (spec 4.5);
supported below the split only."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("InstanceNormalization")
class InstanceNormRule(PassThrough):
    """InstanceNormalization with constant scale and bias: relevance passes through (4.5).

    Its VJP (through the per-sample, per-channel mean and variance) is not emitted: the op
    is supported below the split only."""

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if any(not ctx.view.is_constant(t.name) for t in node.inputs[1:3]):
            return "InstanceNormalization scale/bias are not constants"
        if need == "vjp":
            return "no VJP for InstanceNormalization (supported below the split only)"
        return None
