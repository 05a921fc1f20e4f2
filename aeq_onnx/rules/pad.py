"""Constant-mode Pad with constant, non-negative pads: gradient and relevance are cropped back
to the input (spec 4.9)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.mapping import Mapping, constant_ints


@register("Pad", since=11)
class PadRule(Mapping):
    """Constant-mode Pad with constant, non-negative pads: ``dX`` and ``R_in`` crop the flow
    back to X (Slice from ``pad_begin`` to ``pad_begin + dim``)."""

    vjp_name = "crop"
    relevance_name = "crop (4.9)"

    def _pads(self, ctx: EmitContext, node: gs.Node) -> tuple[list[int], list[int]] | None:
        """(axes, begin pads) with every pad checked; None when not constant."""
        pads, axes = constant_ints(ctx, node, 1), constant_ints(ctx, node, 3)
        if pads is None or axes is None:
            return None
        rank = ctx.view.rank(node.inputs[0].name)
        axes = [a % rank for a in axes] or list(range(rank))
        return axes, pads

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        mode = node.attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            return f"Pad in {mode} mode"
        found = self._pads(ctx, node)
        if found is None:
            return "Pad with non-constant pads or axes"
        axes, pads = found
        if min(pads, default=0) < 0:
            return "Pad with negative pads"
        if any(p and axes[i % len(axes)] == 0 for i, p in enumerate(pads)):
            return "Pad of the batch axis"
        return None

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        axes, pads = self._pads(ctx, node) or ([], [])
        dims = ctx.view.static_dims(node.inputs[0].name)
        keep = [i for i, a in enumerate(axes) if a != 0]
        starts = [pads[i] for i in keep]
        ends = [pads[i] + dims[axes[i] - 1] for i in keep]
        em = ctx.em
        return em.op("Slice", [single(flows), em.ints(starts, "starts"), em.ints(ends, "ends"),
                               em.ints([axes[i] for i in keep], "axes")], "pad_crop")
