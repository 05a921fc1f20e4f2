"""Gemm ``alpha·A·B' + beta·C`` with a constant B: VJP by Gemm with B^T, relevance by the dense
rule (spec 4.4) or LRP with the bias C (rules/shared/dense.py); a ``linear``, ``dense`` layer."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.dense import Dense


def _gemm_weight(ctx: EmitContext, node: gs.Node) -> np.ndarray:
    """W such that ``Y = alpha · A @ W + beta · C`` (transB applied)."""
    b = ctx.view.constant(node.inputs[1].name)
    return b.T if int(node.attrs.get("transB", 0)) else b


@register("Gemm", since=1)
class GemmRule(Dense):
    """Gemm ``alpha·A·B' + beta·C`` with constant B and transA = 0."""

    relevance_name = "AE dense rule (4.4 = 4.2); per-token layers: --token-linear (ae-tokens T3)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if int(node.attrs.get("transA", 0)):
            return "Gemm with transA=1"
        if not ctx.view.is_constant(node.inputs[1].name):
            return "Gemm weight B is not a constant"
        return self.check_layer(ctx, node, need)

    def weight(self, ctx: EmitContext, node: gs.Node) -> np.ndarray:
        return _gemm_weight(ctx, node)

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        """``dA = alpha · g @ W^T``: one Gemm with B as stored (transB flipped)."""
        alpha = float(node.attrs.get("alpha", 1.0))
        flip = 1 - int(node.attrs.get("transB", 0))
        return {0: ctx.em.op("Gemm", [single(grad), node.inputs[1].name], "gemm_vjp",
                             alpha=alpha, transB=flip)}

    def positive_bias(self, ctx: EmitContext, node: gs.Node) -> str | None:
        """``max(beta · C, 0)`` when C is a constant."""
        if len(node.inputs) < 3 or not ctx.view.is_constant(node.inputs[2].name):
            return None
        c = float(node.attrs.get("beta", 1.0)) * ctx.view.constant(node.inputs[2].name)
        return ctx.em.const(np.maximum(c, 0).astype(np.float32), "bias_pos")
