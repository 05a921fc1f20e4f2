"""Sigmoid: pass-through below the split (spec 4.5), VJP ``g · y · (1 - y)`` above it;
explainer vs the torch reference."""

from __future__ import annotations

import torch

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import check_above, check_at_split, check_below, simple


@reference("Sigmoid", relevance=pass_through)
def sigmoid(ins: Ins, node: Node) -> torch.Tensor:
    """``1 / (1 + exp(-x))``."""
    return torch.sigmoid(ins[0])


def test_sigmoid_below_split() -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(simple("Sigmoid"))


def test_sigmoid_above_split() -> None:
    """Sigmoid in the head: its VJP."""
    check_above(simple("Sigmoid"))


def test_sigmoid_at_split() -> None:
    """The split tensor is the Sigmoid output."""
    check_at_split(simple("Sigmoid"), ratio=1.5)
