"""Shape (no rule: it carries no relevance and no gradient, and constant folding removes it
where the dims it reads are static): the dynamic flatten that Paddle2ONNX and other exporters
write, ``Reshape(x, Concat(Slice(Shape(x), 0, 1), [-1]))``, in the head and below the split;
explainer vs the torch reference, whose forward for Shape lives here."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.registry import Ins, Node, reference
from tests.rules.scaffold import SHAPE, C, ints


@reference("Shape")
def shape(ins: Ins, node: Node) -> torch.Tensor:
    """The input's dims as int64, from ``start`` to ``end`` (opset 15; Python slicing)."""
    x = ins[0]
    assert x is not None
    start, end = node.at.get("start", 0), node.at.get("end")
    return torch.tensor(list(x.shape)[int(start):None if end is None else int(end)],
                        dtype=torch.int64)


@pytest.mark.parametrize("form", ["shape-slice", "shape-start-end"])
@pytest.mark.parametrize("where", ["head", "below"])
def test_dynamic_flatten(where: str, form: str) -> None:
    """In the head (the default split, before the global pool: the Reshape's VJP) or below
    the split (named at the flattened tensor: relevance reshaped back, the pool's z-rule)."""
    net = Net(SHAPE, seed=3)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    net.relu(name="late")
    net.op("GlobalAveragePool", [net.cur], name="pooled")
    x = net.cur
    dims = net.op("Shape", [x], **({} if form == "shape-slice" else {"start": 0, "end": 1}))
    if form == "shape-slice":
        dims = net.op("Slice", [dims, ints(net, [0]), ints(net, [1])])
    target = net.op("Concat", [dims, ints(net, [-1])], axis=0)
    flat = net.op("Reshape", [x, target], name="flat")
    bias = net.const(0.1 * net.rng.standard_normal(5))
    net.op("Gemm", [flat, net.weight((5, C), fan_in=C), bias], name="y", transB=1)
    layer = "flat" if where == "below" else None
    compare_with_reference(net.build(classes=5), random_input(SHAPE, seed=4, scale=2.0),
                           layer=layer)
