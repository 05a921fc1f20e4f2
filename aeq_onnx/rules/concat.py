"""Concat (not along the sample axis): gradient and relevance are split back along the axis
(spec 4.9; a constant input such as a class token: its share is dropped); the output is
never negative when no input is."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register


@register("Concat")
class ConcatRule(OpRule):
    """Concat: gradient and relevance are split back along the axis."""

    vjp_name = "split along the axis"
    relevance_name = "split along the axis (4.9)"
    traits = frozenset({"sign_keeping"})

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        y = node.outputs[0].name
        axis = int(node.attrs["axis"]) % ctx.view.rank(y)
        if ctx.samples().along_sample_axis(y, axis):
            return "Concat along the sample axis"
        if any(not isinstance((ctx.samples().layout(t.name) or (None,) * (axis + 1))[axis], int)
               for t in node.inputs):
            return "Concat of inputs of unknown size along the axis"
        return None

    def _split(self, ctx: EmitContext, node: gs.Node, flow: str) -> Flows:
        rank = ctx.view.rank(node.outputs[0].name)
        axis = int(node.attrs["axis"]) % rank
        sizes = [int((ctx.samples().layout(t.name) or ())[axis])  # type: ignore[arg-type]
                 for t in node.inputs]
        parts = ctx.em.op_multi("Split", [flow, ctx.em.ints(sizes, "split")], len(sizes),
                                "concat_back", axis=axis)
        return {i: parts[i] for i in ctx.view.variable_inputs(node)}

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return self._split(ctx, node, single(grad))

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return self._split(ctx, node, single(rel))
