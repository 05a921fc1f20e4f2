"""DequantizeLinear (docs/deployed.md): of constants, a weight (the view reads its exact
float32 value); of an activation, the identity in the float view: gradient and relevance pass
through (spec 4.5). Explainer vs the reference on the float surrogate."""

from __future__ import annotations

import numpy as np
import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, quantized
from tests.reference.quantized import dequantize
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through


@reference("DequantizeLinear", relevance=pass_through)
def dequantize_linear(ins: Ins, node: Node) -> torch.Tensor:
    """``(x - zero_point) · scale`` (per tensor or along ``axis``)."""
    x, scale = ins[0], ins[1]
    assert x is not None and scale is not None
    zero = ins[2] if len(ins) > 2 else None
    return dequantize(x, scale, zero, node.dtype, int(node.at.get("axis", 1)))


def test_dequantized_weights_and_residual_add() -> None:
    """A residual block in QDQ form: the Add's operands are DequantizeLinear outputs, the
    residual rule (4.7) still finds the branch; per-channel int8 weights."""
    net = Net((3, 8, 8), seed=3)
    net.conv(6, 3, pads=1)
    skip = net.relu()
    net.conv(6, 3, pads=1)
    net.relu()
    net.conv(6, 3, pads=1)
    net.op("Add", [net.cur, skip])
    net.relu()
    model = quantized(net.head(), "QDQ", per_channel=True)
    weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
               and n.input[0] in {t.name for t in model.graph.initializer}]
    assert len(weights) >= 4
    got = compare_deployed(model, random_input((3, 8, 8), batch=2, seed=4))
    assert np.isfinite(got.out["relevance"]).all()
