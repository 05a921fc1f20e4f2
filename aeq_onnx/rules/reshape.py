"""Flatten, Reshape, Squeeze, Unsqueeze: gradient and relevance are reshaped back to the input
(spec 4.9); the sign is kept."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


@register("Flatten", "Reshape", "Squeeze", "Unsqueeze")
class ReshapeRule(OpRule):
    """Flatten, Reshape, Squeeze, Unsqueeze: ``dX = reshape(g, shape(X))``,
    ``R_in = reshape(R, shape(X))``."""

    data_inputs = (0,)
    vjp_name = "reshape back"
    relevance_name = "reshape back (4.9)"
    traits = frozenset({"sign_keeping"})

    def _back(self, ctx: EmitContext, node: gs.Node, flow: str) -> Flows:
        x = node.inputs[0].name
        shape = ctx.em.op("Shape", [x], "x_shape")
        return {0: ctx.em.op("Reshape", [flow, shape], "reshape_back")}

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return self._back(ctx, node, single(grad))

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return self._back(ctx, node, single(rel))
