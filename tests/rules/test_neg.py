"""Neg: pass-through below the split (spec 4.5, a scaling by −1), VJP ``−g`` above it;
explainer vs the torch reference between two convs."""

from __future__ import annotations

import torch

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import check_above, check_below, simple


@reference("Neg", relevance=pass_through)
def neg(ins: Ins, node: Node) -> torch.Tensor:
    """``−x``."""
    return torch.neg(ins[0])  # type: ignore[arg-type]


def test_neg_below_split() -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(simple("Neg"))


def test_neg_above_split() -> None:
    """Neg in the head: its VJP."""
    check_above(simple("Neg"))
