"""Split (not along the sample axis): the outputs' gradients and relevances are concatenated back
along the axis, zeros where none arrives (spec 4.9)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.mapping import Mapping, zeros_like


@register("Split", since=13)
class SplitRule(Mapping):
    """Split (any number of outputs, constant sizes): the outputs' flows are concatenated
    along the axis, with zeros for outputs that carry no flow."""

    vjp_name = "concat (zeros where no flow)"
    relevance_name = "concat, zeros where no flow (4.9)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        axis = int(node.attrs.get("axis", 0))
        if ctx.samples().along_sample_axis(node.inputs[0].name, axis):
            return "Split along the sample axis"
        return None

    def back(self, ctx: EmitContext, node: gs.Node, flows: list[str | None]) -> str:
        parts = [f if f is not None else zeros_like(ctx, t.name)
                 for f, t in zip(flows, node.outputs, strict=True)]
        axis = int(node.attrs.get("axis", 0)) % ctx.view.rank(node.inputs[0].name)
        return ctx.em.op("Concat", parts, "split_back", axis=axis)
