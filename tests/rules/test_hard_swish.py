"""HardSwish (opset 14): pass-through below the split (spec 4.5), its exact VJP above it;
explainer vs the torch reference."""

from __future__ import annotations

import torch

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import check_above, check_at_split, check_below, simple


@reference("HardSwish", relevance=pass_through)
def hard_swish(ins: Ins, node: Node) -> torch.Tensor:
    """``x · clamp(x/6 + 1/2, 0, 1)``."""
    x = ins[0]
    assert x is not None
    return x * torch.clamp((1.0 / 6.0) * x + 0.5, 0.0, 1.0)


def test_hard_swish_below_split() -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(simple("HardSwish"), build_at=20, opset=17)


def test_hard_swish_above_split() -> None:
    """HardSwish in the head: its exact VJP."""
    check_above(simple("HardSwish"), build_at=20, opset=17)


def test_hard_swish_at_split() -> None:
    """The split tensor is the HardSwish output."""
    check_at_split(simple("HardSwish"), build_at=20, opset=17)
