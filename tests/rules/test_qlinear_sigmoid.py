"""QLinearSigmoid (onnxruntime, com.microsoft; docs/deployed.md): Sigmoid of the dequantized
input, quantized: pass-through relevance (4.5), Sigmoid's VJP, a gate for Mul (4.8).
Explainer vs the reference on the float surrogate."""

from __future__ import annotations

import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized
from tests.reference.quantized import dq, forward_as, requantize
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through

Tensor = torch.Tensor


@reference("QLinearSigmoid", relevance=pass_through)
def qlinear_sigmoid(ins: Ins, node: Node) -> Tensor:
    """``Q(sigmoid(DQ(X)))``."""
    return requantize(forward_as("Sigmoid", node, [dq(ins, 0, node.dtype)], ()), ins, 3)


def test_qlinear_sigmoid_activation() -> None:
    """A sigmoid activation between convs (below the split) and the pass-through."""
    net = Net((3, 8, 8), seed=7)
    net.conv(6, 3, pads=1)
    net.op("Sigmoid", [net.cur])
    net.conv(6, 3, pads=1)
    net.relu()
    model = quantized(net.head(), "QOperator")
    assert "QLinearSigmoid" in ops_of(model)
    compare_deployed(model, random_input((3, 8, 8), batch=2, seed=8))
