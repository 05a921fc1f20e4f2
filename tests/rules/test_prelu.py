"""PRelu (per-channel and scalar slope): pass-through below the split (spec 4.5), VJP
``g · (x > 0 ? 1 : slope)`` above it; explainer vs the torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import Net
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import Block, check_above, check_at_split, check_below


@reference("PRelu", relevance=pass_through)
def prelu(ins: Ins, node: Node) -> torch.Tensor:
    """``x`` where x > 0, ``slope · x`` elsewhere (slope broadcast)."""
    x = ins[0]
    assert x is not None
    return torch.where(x > 0, x, ins[1] * x)  # type: ignore[operator]


def prelu_block(per_channel: bool) -> Block:
    def add(net: Net) -> str:
        c = net.shape()[0]
        slope = np.linspace(-0.5, 0.8, c).reshape(-1, 1, 1) if per_channel else np.float32(0.25)
        return net.op("PRelu", [net.cur, net.const(slope)])

    return add


CASES: dict[str, Block] = {
    "prelu-channel": prelu_block(True),
    "prelu-scalar": prelu_block(False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_prelu_below_split(name: str) -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(CASES[name], build_at=20, opset=17)


@pytest.mark.parametrize("name", list(CASES))
def test_prelu_above_split(name: str) -> None:
    """PRelu in the head: its exact VJP."""
    check_above(CASES[name], build_at=20, opset=17)


def test_prelu_at_split() -> None:
    """The split tensor is the output of a per-channel PRelu."""
    check_at_split(CASES["prelu-channel"], build_at=20, opset=17)
