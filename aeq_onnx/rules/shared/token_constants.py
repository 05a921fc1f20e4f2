"""Constants in token models (ae-tokens T3): an Add of a constant (position embedding, a
bias that is not part of a per-token linear layer) absorbs its share::

    R_x = x ⊙ sdiv_ε(R, x + c)

while CNNs keep rule 4.5 (pass-through). A bias added right after a per-token MatMul is part
of that layer (:mod:`aeq_onnx.rules.token_linear`) and passes relevance through to it; a
constant added before the first layer (input normalisation) passes through as in CNNs.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.ir import per_sample
from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.shared import token_linear

ABSORB_NAME = "constant absorbs its share: x·sdiv_ε(R, x + c) (token model)"


def absorbs(ctx: EmitContext, node: gs.Node) -> bool:
    """True for an Add of one tensor and a constant in a token model that absorbs its share."""
    variable = ctx.view.variable_inputs(node)
    if not ctx.token_model or node.op != "Add" or len(variable) != 1:
        return False
    if token_linear.biased_layer(ctx, node) is not None:
        return False
    inputs = ctx.view.data_inputs()
    raw = ctx.view.layer_counts(inputs[0]).get(node.inputs[variable[0]].name) if inputs else None
    return raw != 0


def check(ctx: EmitContext, node: gs.Node) -> str | None:
    """The per-sample stabiliser needs the sample axis of the output."""
    return ctx.samples().reduction_problem(node.outputs[0].name)


def absorb(ctx: EmitContext, node: gs.Node, r: str) -> str:
    """``R_x = x ⊙ sdiv_ε(R, y)`` for ``y = x + c``."""
    samples = ctx.samples()
    x = node.inputs[ctx.view.variable_inputs(node)[0]].name
    y = node.outputs[0].name
    layout = samples.layout(y)
    assert layout is not None
    ratio = per_sample.sdiv_eps(ctx.em, r, y, layout, samples.single_sample())
    return ctx.em.op("Mul", [x, ratio], "absorb_R_x")
