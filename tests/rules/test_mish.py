"""Mish (opset 18): pass-through below the split (spec 4.5), its exact VJP above it; explainer
vs the torch reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import check_above, check_at_split, check_below, simple


@reference("Mish", relevance=pass_through)
def mish(ins: Ins, node: Node) -> torch.Tensor:
    """``x · tanh(softplus(x))``."""
    x = ins[0]
    assert x is not None
    return x * torch.tanh(F.softplus(x))


def test_mish_below_split() -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(simple("Mish"), build_at=20, opset=18)


def test_mish_above_split() -> None:
    """Mish in the head: its exact VJP."""
    check_above(simple("Mish"), build_at=20, opset=18)


def test_mish_at_split() -> None:
    """The split tensor is the Mish output."""
    check_at_split(simple("Mish"), build_at=20, opset=18)
