"""DynamicQuantizeLinear: ``y`` quantizes ``x`` with a scale and zero point computed from x's
own range (so nothing saturates); in the float view ``y`` reads as ``(y - zp) · scale`` = x up
to rounding: gradient and relevance pass straight through to x. The scale and zero point are
quantization parameters, not data: no flow reaches them (docs/deployed.md)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule
from aeq_onnx.rules.registry import register


@register("DynamicQuantizeLinear", since=11)
class DynamicQuantizeLinearRule(OpRule):
    """``(y, scale, zp) = DynamicQuantizeLinear(x)``: ``dX = g_y``, ``R_in = R_y``."""

    traits = frozenset({"runtime_parameters"})

    data_inputs = (0,)
    vjp_name = "straight-through: g"
    relevance_name = "pass-through (4.5)"

    def _through(self, flows: list[str | None]) -> Flows:
        return {} if flows[0] is None else {0: flows[0]}

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return self._through(grad)

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return self._through(rel)
