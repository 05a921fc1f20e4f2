"""ReduceMean over non-batch axes (what the dynamo exporter writes for a global average pool):
the z-rule on the positive part through the node's own mean (spec 4.6) below the split, the
spread gradient in the head; axes as an attribute (opset < 18) and as an input (opset 18).
Explainer vs the torch reference."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.onnx_args import ints_arg
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pooling
from tests.rules.scaffold import SHAPE, C, building_at, ints


@reference("ReduceMean", relevance=pooling)
def reduce_mean(ins: Ins, node: Node) -> torch.Tensor:
    """The mean over ``axes`` (all when none; from the input at opset 18+)."""
    x = ins[0]
    assert x is not None
    axes = sorted(a % x.dim() for a in (ints_arg(ins, 1, node.at, "axes") or range(x.dim())))
    return x.mean(dim=axes, keepdim=bool(node.at.get("keepdims", 1)))


def mean(net: Net, axes: list[int], keepdims: int = 1, as_input: bool = False) -> str:
    """ReduceMean over ``axes``, given as an attribute or (opset 18) as an input."""
    if as_input:
        return net.op("ReduceMean", [net.cur, ints(net, axes)], keepdims=keepdims)
    return net.op("ReduceMean", [net.cur], axes=axes, keepdims=keepdims)


def trunk(seed: int) -> Net:
    """Conv → Relu (``early``) → Conv → Relu."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    net.relu()
    return net


@pytest.mark.parametrize("keepdims", [1, 0], ids=["keepdims", "no-keepdims"])
def test_global_reduce_mean_in_head(keepdims: int) -> None:
    """ReduceMean over H,W as the global pool: the default split is its input (spec 2) and it
    is differentiated."""
    net = trunk(seed=1)
    before = net.cur
    mean(net, [2, 3], keepdims)
    if keepdims:
        net.op("Flatten", [net.cur], axis=1)
    net.gemm(5, name="y")
    got = compare_with_reference(net.build(classes=5), random_input(SHAPE, seed=2, scale=2.0))
    assert got.reference["split"] == before


def test_global_reduce_mean_below_split() -> None:
    """The split named at the [N,C,1,1] mean: rule 4.6 spreads each channel's relevance over
    its positive inputs in proportion to their values."""
    net = trunk(seed=3)
    pooled = mean(net, [2, 3])
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(5, name="y")
    compare_with_reference(net.build(classes=5), random_input(SHAPE, seed=4, scale=2.0),
                           layer=pooled)


@pytest.mark.parametrize("opset", [17, 18], ids=["axes-attribute", "axes-input"])
@pytest.mark.parametrize("where", ["below", "above"])
def test_reduce_mean_over_width(where: str, opset: int) -> None:
    """ReduceMean over W only ([N,C,H,1]) between two convs."""
    with building_at(opset):
        net = trunk(seed=5)
        mean(net, [3], as_input=opset >= 18)
        net.conv(C, 3, pads=1)
        net.relu()
        model = net.head()
    layer = "early" if where == "above" else None
    compare_with_reference(model, random_input(SHAPE, seed=6, scale=2.0), layer=layer)
