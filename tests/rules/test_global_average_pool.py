"""GlobalAveragePool: the z-rule on the positive part through the mean (spec 4.6) below the
split (rank-4 and dense continuations), the spread gradient in the head (the default head:
GlobalAveragePool → Flatten → Gemm). Explainer vs the torch reference."""

from __future__ import annotations

import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pooling

CIN = 3


@reference("GlobalAveragePool", relevance=pooling)
def global_average_pool(ins: Ins, node: Node) -> torch.Tensor:
    """The mean over every spatial axis, kept as size-1 axes."""
    x = ins[0]
    assert x is not None
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


def test_global_average_pool_below_split_rank4() -> None:
    """GlobalAveragePool below the split: a 1×1 conv and Relu after it, split at that Relu."""
    net = Net((CIN, 8, 8), seed=5)
    net.conv(6, 3, pads=1)
    net.relu()
    net.op("GlobalAveragePool", [net.cur])
    net.conv(8, 1)
    net.relu(name="after_gap")
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(5, name="y")
    model = net.build(classes=5)
    compare_with_reference(model, random_input((CIN, 8, 8), seed=6), layer="after_gap")


def test_global_average_pool_below_split_dense() -> None:
    """GlobalAveragePool → Flatten → Gemm → Relu below the split (split before the last
    dense layer)."""
    net = Net((CIN, 8, 8), seed=7)
    net.conv(6, 3, pads=1)
    net.relu()
    net.op("GlobalAveragePool", [net.cur])
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(8)
    net.relu(name="hidden")
    net.gemm(5, name="y")
    model = net.build(classes=5)
    compare_with_reference(model, random_input((CIN, 8, 8), seed=8), layer="hidden")


def test_global_average_pool_in_head() -> None:
    """The default model head (GlobalAveragePool → Flatten → Gemm) differentiated, split at
    an earlier layer."""
    net = Net((CIN, 8, 8), seed=9)
    net.conv(6, 3, pads=1)
    net.relu(name="early")
    net.conv(6, 3, pads=1)
    net.relu()
    compare_with_reference(net.head(), random_input((CIN, 8, 8), seed=10), layer="early")
