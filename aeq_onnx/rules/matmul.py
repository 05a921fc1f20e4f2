"""MatMul ``A @ B`` with a constant 2-D B: VJP by MatMul with B^T, relevance by the dense rule
(spec 4.4), LRP, or on ``[..., C]`` tokens the per-token rules (rules/shared/dense.py,
token_linear.py); a ``linear``, ``dense`` layer. Of two tensors, attention mixing
(ae-tokens T3, rules/shared/attention.py): ``P·V`` sends relevance to V only, Q·Kᵀ none."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.ir.graph import GraphView
from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared import attention
from aeq_onnx.rules.shared.dense import Dense


@register("MatMul", since=1)
class MatMulRule(Dense):
    """MatMul ``A @ B`` with a constant 2-D B; of two tensors, attention mixing."""

    relevance_name = ("AE dense rule (4.4 = 4.2); per-token layers: --token-linear "
                      "(ae-tokens T3); of two tensors: attention, V by the z-rule, P a gate")

    def node_traits(self, view: GraphView, node: gs.Node) -> frozenset[str]:
        """Of two tensors no layer; ``token`` when it is attention mixing."""
        if len(view.variable_inputs(node)) == 2:  # no weights: not a layer
            return frozenset({"token"}) if attention.is_attention(view, node) else frozenset()
        return super().node_traits(view, node)

    def data_indices_of(self, view: GraphView, node: gs.Node) -> list[int]:
        if len(view.variable_inputs(node)) == 2:
            return [0, 1]
        return super().data_indices_of(view, node)

    def relevance_indices_of(self, view: GraphView, node: gs.Node) -> list[int]:
        if len(view.variable_inputs(node)) == 2:
            return attention.relevance_inputs(view, node)
        return super().relevance_indices_of(view, node)

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if len(ctx.view.variable_inputs(node)) == 2:
            return attention.check(ctx, node, need)
        b = node.inputs[1].name
        if ctx.view.is_constant(node.inputs[0].name) or not ctx.view.is_constant(b):
            return "MatMul needs a variable first operand and a constant second one"
        if ctx.view.constant(b).ndim != 2:
            return "MatMul weight is not 2-D"
        return self.check_layer(ctx, node, need)

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        if len(ctx.view.variable_inputs(node)) == 2:
            return attention.describe(ctx, node)
        return super().describe(ctx, node)

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        if len(ctx.view.variable_inputs(node)) == 2:
            return attention.vjp(ctx, node, single(grad))
        return super().vjp(ctx, node, grad)

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        if len(ctx.view.variable_inputs(node)) == 2:
            return attention.relevance(ctx, node, single(rel))
        return super().relevance(ctx, node, rel)

    def weight(self, ctx: EmitContext, node: gs.Node) -> np.ndarray:
        return ctx.view.constant(node.inputs[1].name)
