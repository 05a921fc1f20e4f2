"""Transpose (any permutation: the sample axis moves with it, ae-tokens T1): gradient and
relevance take the inverse transpose (spec 4.9); the sign is kept."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.mapping import Mapping


@register("Transpose")
class TransposeRule(Mapping):
    """``y = transpose(x, perm)``: ``dX = transpose(g, perm⁻¹)``,
    ``R_in = transpose(R, perm⁻¹)``."""

    vjp_name = "inverse transpose"
    relevance_name = "inverse transpose (4.9)"
    traits = frozenset({"sign_keeping"})

    def _perm(self, ctx: EmitContext, node: gs.Node) -> list[int]:
        rank = ctx.view.rank(node.inputs[0].name)
        return [int(p) for p in node.attrs.get("perm", list(range(rank))[::-1])]

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        inverse = [int(i) for i in np.argsort(self._perm(ctx, node))]
        return ctx.em.op("Transpose", [single(flows)], "transpose_back", perm=inverse)
