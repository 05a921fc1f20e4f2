"""Identity and inference-mode Dropout (one rule): pass-through below the split (spec 4.5), VJP
``g`` above it; canonicalisation strips them, so a split or ``layer=`` at their output must
still match the torch reference."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import SHAPE, C, check_above, check_below, simple


@reference("Identity", relevance=pass_through)
def identity(ins: Ins, node: Node) -> torch.Tensor:
    """``x``."""
    return ins[0]  # type: ignore[return-value]


@reference("Dropout", relevance=pass_through)
def dropout(ins: Ins, node: Node) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Inference mode: ``x`` (and an all-true mask when the node asks for one)."""
    x = ins[0]
    assert x is not None
    if len(node.outputs) > 1 and node.outputs[1]:
        return x, torch.ones_like(x, dtype=torch.bool)
    return x


OPS = ["Identity", "Dropout"]


@pytest.mark.parametrize("op", OPS)
def test_identity_below_split(op: str) -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(simple(op))


@pytest.mark.parametrize("op", OPS)
def test_identity_above_split(op: str) -> None:
    """Identity / Dropout in the head: gradient unchanged."""
    check_above(simple(op))


@pytest.mark.parametrize("op", OPS)
def test_split_at_identity_output(op: str) -> None:
    """The default split is the output of an Identity/Dropout right before the global pool:
    the same numbers as the tensor it copies (canonicalisation strips the node, so the
    recorded split name may differ)."""
    net = Net(SHAPE, seed=13)
    net.conv(C, 3, pads=1)
    net.relu()
    net.op(op, [net.cur], name="features")
    compare_with_reference(net.head(), random_input(SHAPE, seed=14), split_name=False)


@pytest.mark.parametrize("op", OPS)
def test_layer_named_at_identity_output(op: str) -> None:
    """``layer=`` naming the output of an Identity/Dropout of the user's model.

    The tensor exists in the model the user passed, but ``strip_identity`` removes the node
    (rewiring its consumers to its input) before the split is looked up, so
    ``compile_explainer`` raises ``LayerError: layer 'features' is not a tensor of the model``.
    """
    net = Net(SHAPE, seed=15)
    net.conv(C, 3, pads=1)
    net.relu()
    net.op(op, [net.cur], name="features")
    net.conv(C, 3, pads=1)
    net.relu()
    compare_with_reference(net.head(), random_input(SHAPE, seed=16), layer="features",
                           split_name=False)
