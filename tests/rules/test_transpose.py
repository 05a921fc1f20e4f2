"""Transpose: the inverse permutation (spec 4.9) for relevance below the split and for the
gradient in the head; explainer vs the torch reference."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import Net
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import mapping
from tests.rules.scaffold import Block, check_above, check_below


@reference("Transpose", relevance=mapping)
def transpose(ins: Ins, node: Node) -> torch.Tensor:
    """``x`` with its axes permuted by ``perm`` (reversed by default)."""
    x = ins[0]
    assert x is not None
    return x.permute(*node.at.get("perm", range(x.dim())[::-1]))


def transposes(*perms: list[int]) -> Block:
    def add(net: Net) -> str:
        for perm in perms:
            net.op("Transpose", [net.cur], perm=perm)
        return net.cur

    return add


CASES: dict[str, Block] = {
    "transpose-hw": transposes([0, 1, 3, 2]),
    "transpose-nhwc-roundtrip": transposes([0, 2, 3, 1], [0, 3, 1, 2]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_transpose_below_split(name: str) -> None:
    """Rule 4.9: relevance moves back along the inverse permutation."""
    check_below(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_transpose_above_split(name: str) -> None:
    """Transpose in the head: its VJP (the same mapping)."""
    check_above(CASES[name])
