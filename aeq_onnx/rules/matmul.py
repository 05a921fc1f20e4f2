"""MatMul ``A @ B`` with a constant 2-D B: VJP by MatMul with B^T, relevance by the dense rule
(spec 4.4) or LRP (rules/shared/dense.py); a ``linear``, ``dense`` layer."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.dense import Dense


@register("MatMul", since=1)
class MatMulRule(Dense):
    """MatMul ``A @ B`` with a constant 2-D B."""

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        b = node.inputs[1].name
        if ctx.view.is_constant(node.inputs[0].name) or not ctx.view.is_constant(b):
            return "MatMul needs a variable first operand and a constant second one"
        if ctx.view.constant(b).ndim != 2:
            return "MatMul weight is not 2-D"
        return None

    def weight(self, ctx: EmitContext, node: gs.Node) -> np.ndarray:
        return ctx.view.constant(node.inputs[1].name)
