"""QLinearAdd (onnxruntime, com.microsoft; docs/deployed.md): Add's rules (4.7) over the
dequantized operands, the residual rule asking the graph which operand is the shortcut.
Explainer vs the reference on the float surrogate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized
from tests.reference.interpreter import Walk
from tests.reference.quantized import Operand, dq, forward_as, relevance_as, requantize, walk_ins
from tests.reference.registry import Ins, Node, reference

Tensor = torch.Tensor


def join_relevance(op: str) -> Callable[[Walk, Node, Tensor], list[tuple[str, Tensor]]]:
    """The float ``op``'s relevance over the two dequantized operands, which keep the model's
    names (the join rules ask where they come from); a constant operand is a weight."""

    def relevance(walk: Walk, node: Node, R: Tensor) -> list[tuple[str, Tensor]]:
        ins = walk_ins(walk, node)
        ops = [Operand(node.inputs[i], dq(ins, i, node.dtype), node.inputs[i],
                       constant=node.inputs[i] in walk.graph.const) for i in (0, 3)]
        y = dq([walk.value(node.outputs[0]), *ins[6:8]], 0, node.dtype)
        return relevance_as(op, walk, node, ops, y, R, ())

    return relevance


def join_forward(op: str) -> Callable[[Ins, Node], Tensor]:
    """``Q(op(DQ(A), DQ(B)))``."""

    def forward(ins: Ins, node: Node) -> Tensor:
        y = forward_as(op, node, [dq(ins, 0, node.dtype), dq(ins, 3, node.dtype)], ())
        return requantize(y, ins, 6)

    return forward


@reference("QLinearAdd", relevance=join_relevance("Add"))
def qlinear_add(ins: Ins, node: Node) -> Tensor:
    """``Q(DQ(A) + DQ(B))``."""
    return join_forward("Add")(ins, node)


def residual_net(seed: int) -> Net:
    """A residual block: conv-relu, then conv-relu-conv added to it, relu."""
    net = Net((3, 8, 8), seed=seed)
    net.conv(6, 3, pads=1)
    skip = net.relu()
    net.conv(6, 3, pads=1)
    net.relu()
    net.conv(6, 3, pads=1)
    net.op("Add", [net.cur, skip])
    net.relu()
    return net


@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_add_residual(per_channel: bool) -> None:
    model = quantized(residual_net(3).head(), "QOperator", per_channel=per_channel)
    assert "QLinearAdd" in ops_of(model)
    compare_deployed(model, random_input((3, 8, 8), batch=2, seed=4))
