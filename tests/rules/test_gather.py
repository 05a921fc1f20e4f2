"""Gather with constant indices (spec 4.9): relevance and gradient scattered back (summed over
repeated indices) into zeros of the input's shape; a scalar index (the class token ``x[:, 0]``)
drops the axis and pads it back. In a token model the class token's Gather gives the split
(ae-tokens T2). Explainer vs the torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import mapping
from tests.rules.scaffold import SHAPE, Block, C, check_above, check_below, ints
from tests.rules.token_scaffold import (
    class_token,
    cls_head,
    compare_tokens,
    linear,
    token_input,
)


@reference("Gather", relevance=mapping)
def gather(ins: Ins, node: Node) -> torch.Tensor:
    """numpy's take(x, indices, axis); negative indices count from the end."""
    x, idx = ins[0], ins[1]
    assert x is not None and idx is not None
    axis = int(node.at.get("axis", 0)) % x.dim()
    picked = x.index_select(axis, idx.reshape(-1).long() % x.shape[axis])
    return picked.reshape((*x.shape[:axis], *idx.shape, *x.shape[axis + 1:]))


def gather_block(indices: list[int] | int, axis: int) -> Block:
    def add(net: Net) -> str:
        idx = net.const(np.asarray(indices, np.int64), "i")
        return net.op("Gather", [net.cur, idx], axis=axis)
    return add


def gather_scalar_and_back(net: Net) -> str:
    """``x[:, :, 2]`` (a scalar index drops H) then Unsqueeze it back: a rank-4 map again."""
    net.op("Gather", [net.cur, net.const(np.asarray(2, np.int64), "i")], axis=2)
    return net.op("Unsqueeze", [net.cur, ints(net, [2])])


CASES: dict[str, Block] = {
    "channels-permuted": gather_block([2, 0, 1, 5, 4, 3], axis=1),
    "channels-repeated": gather_block([0, 0, 3, 3, 5, 1], axis=1),  # sums where repeated
    "rows-negative": gather_block([-1, 0, 4, 2], axis=2),
    "scalar-row": gather_scalar_and_back,
}


@pytest.mark.parametrize("name", list(CASES))
def test_gather_below_split(name: str) -> None:
    """Rule 4.9: relevance scattered back, between two convs."""
    check_below(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_gather_above_split(name: str) -> None:
    """Gather in the head: its VJP."""
    check_above(CASES[name])


def test_class_token_gather_is_the_split() -> None:
    """A ViT's head reads the class token: the split is the tokens before that Gather, the
    relevance reaches the patch tokens through LayerNorm, the position embedding (absorbing)
    and the class-token Concat (the constant's share dropped)."""
    net = Net((4, 3), seed=2)
    linear(net, 6)
    class_token(net)
    net.op("LayerNormalization", [net.cur, net.const(0.5 + net.rng.random(6))], axis=-1)
    split = net.cur
    model = cls_head(net, split, 6)
    for initial in ("elementwise", "channel-mean"):
        compare_tokens(model, token_input(3, tokens=4, channels=3), split, initial=initial)


def test_gather_along_batch_axis_refused() -> None:
    net = Net(SHAPE, seed=5)
    net.conv(C, 3, pads=1)
    gather_block([0], axis=0)(net)
    net.conv(C, 3, pads=1)
    with pytest.raises(UnsupportedOpError, match="Gather along the sample axis"):
        aeq_onnx.compile_explainer(net.head())
