"""QLinearLeakyRelu (onnxruntime, com.microsoft; docs/deployed.md): LeakyRelu of the
dequantized input, quantized: pass-through relevance (4.5), LeakyRelu's VJP. Explainer vs the
reference on the float surrogate."""

from __future__ import annotations

import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized
from tests.reference.quantized import dq, forward_as, requantize
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through

Tensor = torch.Tensor


@reference("QLinearLeakyRelu", relevance=pass_through)
def qlinear_leaky_relu(ins: Ins, node: Node) -> Tensor:
    """``Q(leaky_relu(DQ(X), alpha))``."""
    y = forward_as("LeakyRelu", node, [dq(ins, 0, node.dtype)], ("alpha",))
    return requantize(y, ins, 3)


def test_qlinear_leaky_relu_activation() -> None:
    net = Net((3, 8, 8), seed=9)
    net.conv(6, 3, pads=1)
    net.op("LeakyRelu", [net.cur], alpha=0.1)
    net.conv(6, 3, pads=1)
    net.relu()
    model = quantized(net.head(), "QOperator")
    assert "QLinearLeakyRelu" in ops_of(model)
    compare_deployed(model, random_input((3, 8, 8), batch=2, seed=10))
