"""Tanh: pass-through below the split (spec 4.5), VJP ``g · (1 - y²)`` above it; explainer vs the
torch reference."""

from __future__ import annotations

import torch

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import (
    check_above,
    check_at_split,
    check_before_first_conv,
    check_below,
    simple,
)


@reference("Tanh", relevance=pass_through)
def tanh(ins: Ins, node: Node) -> torch.Tensor:
    """``tanh(x)``."""
    return torch.tanh(ins[0])


def test_tanh_below_split() -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(simple("Tanh"))


def test_tanh_above_split() -> None:
    """Tanh in the head: its VJP."""
    check_above(simple("Tanh"))


def test_tanh_at_split() -> None:
    """The split tensor is the Tanh output."""
    check_at_split(simple("Tanh"), ratio=1.5)


def test_tanh_before_first_conv() -> None:
    """Tanh between the model input and the first conv: that conv keeps the bounded rule (4.3)
    with l, h over its own (transformed) input."""
    check_before_first_conv(simple("Tanh"))
