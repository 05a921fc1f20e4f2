"""Identity and inference-mode Dropout: ``dX = g``, relevance passes through (spec 4.5).
(The converters remove both before the rules see them; the rule covers a graph that keeps one.)"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough


@register("Identity", "Dropout")
class IdentityRule(PassThrough):
    """Identity and inference-mode Dropout: ``dX = g``."""

    vjp_name = "identity"
    traits = frozenset({"sign_keeping"})

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: single(grad)}
