"""Softplus: pass-through below the split (spec 4.5), VJP ``g · sigmoid(x)`` above it;
explainer vs the torch reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import check_above, check_below, simple


@reference("Softplus", relevance=pass_through)
def softplus(ins: Ins, node: Node) -> torch.Tensor:
    """``log(1 + exp(x))``."""
    return F.softplus(ins[0])  # type: ignore[arg-type]


def test_softplus_below_split() -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(simple("Softplus"), build_at=20, opset=17)


def test_softplus_above_split() -> None:
    """Softplus in the head: its exact VJP."""
    check_above(simple("Softplus"), build_at=20, opset=17)
