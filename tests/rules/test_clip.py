"""Clip (ReLU6 and other bounds, from inputs or opset < 11 attributes): pass-through below the
split (spec 4.5), VJP ``g · 1[min < x < max]`` above it; explainer vs the torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import Net
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import Block, check_above, check_at_split, check_below


@reference("Clip", relevance=pass_through)
def clip(ins: Ins, node: Node) -> torch.Tensor:
    """``min(max(x, lo), hi)``; bounds from inputs 1, 2 or attributes ``min``, ``max``."""
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else node.at.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else node.at.get("max")
    return torch.clamp(ins[0], min=lo, max=hi)  # type: ignore[arg-type]


def clip_block(lo: float | None, hi: float | None) -> Block:
    def add(net: Net) -> str:
        ins = [net.cur, net.const(np.float32(lo)) if lo is not None else ""]
        if hi is not None:
            ins.append(net.const(np.float32(hi)))
        return net.op("Clip", ins)

    return add


CASES: dict[str, Block] = {
    "relu6": clip_block(0.0, 6.0),
    "clip-0-0.5": clip_block(0.0, 0.5),
    "clip-min-only": clip_block(-0.2, None),
    "clip-sym-1": clip_block(-1.0, 1.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_clip_below_split(name: str) -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_clip_above_split(name: str) -> None:
    """Clip in the head: its VJP."""
    check_above(CASES[name])


def test_relu6_at_split() -> None:
    """The split tensor is the ReLU6 output."""
    check_at_split(CASES["relu6"], ratio=1.5)
