"""Cast between float types: ``dX = g``, relevance passes through (spec 4.5)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("Cast")
class CastRule(PassThrough):
    """Cast between float types: ``dX = g``. (It keeps the sign, yet declares no
    ``sign_keeping`` trait: no explainer changed when the traits moved onto the rules.)"""

    vjp_name = "identity"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: single(grad)}
