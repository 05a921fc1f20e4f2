"""Expand (spec 4.9): every copy of an element sends its gradient and relevance back to it,
``dX = R_in = Σ`` over the broadcast axes; a constant expanded to the batch (ViT's class
token) carries no data, and its share is dropped at the Concat. Explainer vs the torch
reference."""

from __future__ import annotations

import numpy as np
import torch

from tests.helpers import Net
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import mapping
from tests.rules.scaffold import check_above, check_below
from tests.rules.token_scaffold import (
    class_token,
    compare_tokens,
    linear,
    mean_head,
    token_input,
)


def expand_relevance(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """A constant expanded (the class token): nothing (its share is dropped); a data tensor:
    the VJP of the broadcast, summed over the copies."""
    if node.inputs[0] in walk.graph.const:
        return []
    return mapping(walk, node, R)


@reference("Expand", relevance=expand_relevance)
def expand(ins: Ins, node: Node) -> torch.Tensor:
    """Bidirectional broadcast of ``x`` with the shape input."""
    x, shape = ins[0], ins[1]
    assert x is not None and shape is not None
    return torch.broadcast_to(x, torch.broadcast_shapes(x.shape, tuple(shape.tolist())))


def mean_rows_expanded(net: Net) -> str:
    """``ReduceMean`` over H (keepdims) then Expand back to ``[1, C, H, W]`` (broadcast N)."""
    c, h, w = net.shape()
    net.op("ReduceMean", [net.cur], axes=[2], keepdims=1)
    return net.op("Expand", [net.cur, net.const(np.asarray([1, c, h, w], np.int64))])


def test_expand_below_split() -> None:
    check_below(mean_rows_expanded)


def test_expand_above_split() -> None:
    check_above(mean_rows_expanded)


def test_class_token_expanded_to_the_batch() -> None:
    """The class token: Expand to ``[N, 1, D]`` with N from Shape, Concat before the tokens;
    a mean over the tokens at the end, so the class token's row receives relevance that the
    constant keeps (dropped), and the patch tokens get the rest."""
    net = Net((4, 3), seed=6)
    linear(net, 5)
    class_token(net)
    split = net.op("LayerNormalization", [net.cur, net.const(np.ones(5))], axis=-1)
    x = token_input(7, tokens=4, channels=3)
    out = compare_tokens(mean_head(net, split, 5), x, split)
    assert x.shape == out["relevance"].shape

