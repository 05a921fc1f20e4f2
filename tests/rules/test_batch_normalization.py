"""BatchNormalization (inference): folded into the conv before it where it can be, kept
otherwise; pass-through below the split (spec 4.5), per-channel scaling VJP above it; explainer
vs the torch reference."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import (
    SHAPE,
    Block,
    C,
    between_model,
    check_above,
    check_at_split,
    check_before_first_conv,
    check_below,
    const_operand,
)


@reference("BatchNormalization", relevance=pass_through)
def batch_normalization(ins: Ins, node: Node) -> torch.Tensor:
    """``(x - mean) · scale / sqrt(var + eps) + bias`` per channel."""
    x, scale, bias, mean, var = ins[:5]
    shape = (1, -1) + (1,) * (x.dim() - 2)  # type: ignore[union-attr]
    inv = scale / torch.sqrt(var + float(node.at.get("epsilon", 1e-5)))  # type: ignore[operator]
    return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)  # type: ignore[operator,union-attr]


CASES: dict[str, Block] = {
    "batchnorm": lambda net: net.batchnorm(),  # right after a conv: folded into it
    "relu-batchnorm": lambda net: (net.relu(), net.batchnorm())[1],  # kept unfolded
}


@pytest.mark.parametrize("name", list(CASES))
def test_batchnorm_below_split(name: str) -> None:
    """Rule 4.5 (or folding): relevance passes through unchanged, between two convs."""
    check_below(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_batchnorm_above_split(name: str) -> None:
    """BatchNormalization in the head: its VJP."""
    check_above(CASES[name])


def test_batchnorm_at_split() -> None:
    """The split tensor is the output of a BatchNormalization after a Relu."""
    check_at_split(CASES["relu-batchnorm"], ratio=1.5)


def test_batchnorm_after_relu_stays_unfolded() -> None:
    """BN after a non-conv cannot be folded: the explainer keeps it and passes relevance."""
    net = between_model(CASES["relu-batchnorm"], seed=11)
    got = compare_with_reference(net.head(), random_input(SHAPE, seed=12))
    assert "BatchNormalization" in {n.op_type for n in got.explainer.graph.node}


def test_batchnorm_before_first_conv() -> None:
    """BatchNormalization as input normalisation: the first conv keeps the bounded rule (4.3)."""
    check_before_first_conv(lambda net: net.batchnorm())


def test_chain_of_pass_through_ops() -> None:
    """Several pass-through ops in a row below the split, with BN kept unfolded after Relu."""
    net = Net(SHAPE, seed=9)
    net.conv(C, 3, pads=1)
    net.relu()
    net.batchnorm()
    net.op("LeakyRelu", [net.cur], alpha=0.3)
    net.conv(C, 3, pads=1)
    net.op("Clip", [net.cur, net.const(0.0), net.const(6.0)])  # ReLU6
    const_operand("Mul", "chw")(net)
    net.op("Sigmoid", [net.cur])
    net.conv(C, 1)
    net.op("Tanh", [net.cur])
    compare_with_reference(net.head(), random_input(SHAPE, seed=10, scale=2.0), ratio=1.0)
