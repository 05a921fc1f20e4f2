"""Relu: pass-through below the split (spec 4.5), VJP ``g · 1[x > 0]`` above it; explainer vs
the torch reference between two convs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import check_above, check_below, simple


@reference("Relu", relevance=pass_through)
def relu(ins: Ins, node: Node) -> torch.Tensor:
    """``max(x, 0)``."""
    return F.relu(ins[0])


def test_relu_below_split() -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(simple("Relu"))


def test_relu_above_split() -> None:
    """Relu in the head: its VJP."""
    check_above(simple("Relu"))
