"""Gather (spec 4.9): with constant indices, gradient and relevance go back through the
transpose of the gather, scattered into zeros (repeated indices sum); the class token
``x[:, 0]`` and the q/k/v selection ``qkv[i]`` are scalar indices that drop the axis.

Per sample, with constant indices ``idx`` (K of them) along an axis of size D,
``y = x ×_axis S`` with ``S[i, k] = 1[idx[k] mod D = i]``; ``dX = g ×_axis Sᵀ`` and
``R_in = R ×_axis Sᵀ`` (Σ R kept). A scalar index i is ``Pad`` of the flow with i zeros
before and D - i - 1 after along the re-inserted axis. A gather along the sample axis is
refused. Non-constant indices (dynamo's ``as_strided`` on a flat tensor) have a VJP only,
for a 1-D data tensor: ``ScatterElements`` with ``reduction="add"``.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


def _zeros_like(ctx: EmitContext, like: str) -> str:
    em = ctx.em
    value = onnx.helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [0.0])
    return em.op("ConstantOfShape", [em.op("Shape", [like], "like_shape")], "zeros", value=value)


@register("Gather", since=11)  # negative indices from opset 11
class GatherRule(OpRule):
    """``y = take(x, idx, axis)``: back through ``Sᵀ`` (scalar index: Pad)."""

    data_inputs = (0,)
    vjp_name = "scatter-add back (Sᵀ)"
    relevance_name = "scatter-add back (4.9)"
    traits = frozenset({"sign_keeping", "token_pool"})

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        x, indices = node.inputs[0].name, node.inputs[1].name
        rank = ctx.view.rank(x)
        axis = int(node.attrs.get("axis", 0)) % rank
        if not ctx.view.is_constant(indices):
            if need == "vjp" and rank == 1:
                return None
            return "Gather with non-constant indices (a VJP only, on a 1-D tensor)"
        if ctx.view.constant(indices).ndim > 1:
            return "Gather with indices of rank > 1"
        if ctx.samples().along_sample_axis(x, axis):
            return "Gather along the sample axis"
        layout = ctx.samples().layout(x)
        if layout is None or not isinstance(layout[axis], int):
            return "Gather along an axis of unknown size"
        return None

    def _back(self, ctx: EmitContext, node: gs.Node, flow: str) -> str:
        em, x = ctx.em, node.inputs[0].name
        if not ctx.view.is_constant(node.inputs[1].name):
            return self._scatter(ctx, node, flow)
        layout = ctx.samples().layout(x)
        assert layout is not None
        rank, axis = len(layout), int(node.attrs.get("axis", 0)) % len(layout)
        size = int(layout[axis])  # type: ignore[arg-type]
        idx = ctx.view.constant(node.inputs[1].name).astype(np.int64)
        if idx.ndim == 0:
            i = int(idx) % size
            lifted = em.op("Unsqueeze", [flow, em.ints([axis], "axes")], "gather_lift")
            pads = [0] * (2 * rank)
            pads[axis], pads[axis + rank] = i, size - i - 1
            return em.op("Pad", [lifted, em.ints(pads, "pads")], "gather_back")
        s_t = np.zeros((len(idx), size), np.float32)  # Sᵀ: [K, D]
        s_t[np.arange(len(idx)), idx % size] = 1.0
        perm = [a for a in range(rank) if a != axis] + [axis]  # gathered axis last
        last = em.op("Transpose", [flow], "gather_last", perm=perm)
        back = em.op("MatMul", [last, em.const(s_t, "gather_st")], "gather_back")
        restore = [int(a) for a in np.argsort(perm)]
        return em.op("Transpose", [back], "gather_restore", perm=restore)

    def _scatter(self, ctx: EmitContext, node: gs.Node, flow: str) -> str:
        """``dX`` of a 1-D gather with run-time indices: scatter-add into zeros."""
        em, x = ctx.em, node.inputs[0].name
        flat = em.ints([-1], "flat")
        return em.op("ScatterElements", [
            _zeros_like(ctx, x), em.op("Reshape", [node.inputs[1].name, flat], "idx_flat"),
            em.op("Reshape", [flow, flat], "g_flat")], "gather_scatter", axis=0,
            reduction="add")

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {0: self._back(ctx, node, single(grad))}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return {0: self._back(ctx, node, single(rel))}
