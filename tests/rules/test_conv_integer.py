"""ConvInteger (docs/deployed.md): Conv's rules in integer units, ``conv(x - x_zp, w - w_zp)``;
the graph scales its int32 output by ``x_scale · w_scale`` (the run-time scale is no data), so
the VJP at x is Conv's divided by ``x_scale``, and relevance needs no unit (AE's rules do not
change when an input or a weight is scaled by a positive factor). Explainer vs the reference."""

from __future__ import annotations

import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized_dynamic
from tests.reference.interpreter import Walk
from tests.reference.quantized import Operand, alias, forward_as, relevance_as, units, walk_ins
from tests.reference.registry import Ins, Node, reference

Tensor = torch.Tensor


def operands(ins: Ins, node: Node) -> list[Tensor | None]:
    """``x - x_zp`` and ``w - w_zp`` (per output channel)."""
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    return [units(x, ins[2] if len(ins) > 2 else None, node.dtype),
            units(w, ins[3] if len(ins) > 3 else None, node.dtype, axis=0)]


def conv_integer_relevance(walk: Walk, node: Node, R: Tensor) -> list[tuple[str, Tensor]]:
    x, w = operands(walk_ins(walk, node), node)
    assert x is not None and w is not None
    ops = [Operand(alias(node, 0), x, node.inputs[0]),
           Operand(alias(node, 1), w, node.inputs[1], constant=True)]
    return relevance_as("Conv", walk, node, ops, walk.value(node.outputs[0]), R)


@reference("ConvInteger", relevance=conv_integer_relevance, traits=["linear"])
def conv_integer(ins: Ins, node: Node) -> Tensor:
    """``conv(x - x_zp, w - w_zp)`` (int32 values, held as floats)."""
    return forward_as("Conv", node, operands(ins, node))


def test_conv_integer_net() -> None:
    """ConvInteger layers fed by DynamicQuantizeLinear (the first is the input layer, 4.3)."""
    net = Net((3, 8, 8), seed=19)
    net.conv(6, 3, pads=1, bias=False)
    net.relu()
    net.conv(6, 3, pads=1, bias=False)
    net.relu()
    model = quantized_dynamic(net.head(), ops=("Conv",))
    assert {"DynamicQuantizeLinear", "ConvInteger"} <= ops_of(model)
    compare_deployed(model, random_input((3, 8, 8), batch=2, seed=20))
