"""Concat: relevance split along the axis (spec 4.9) below the split, the same split of the
gradient in the head; DenseNet-style concats of the fork itself, three Relu branches before the
global pool, concat along H, and a Concat feeding a residual Add. Explainer vs the torch
reference."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference
from tests.rules.scaffold import C, stem


def concat_relevance(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Section 4.9: R split along the axis, each part to its (non-constant) input."""
    axis = int(node.at["axis"])
    sizes = [walk.env[i].shape[axis] for i in node.inputs]
    parts = torch.split(R, sizes, dim=axis)
    return [(i, p) for i, p in zip(node.inputs, parts, strict=True) if i not in walk.graph.const]


@reference("Concat", relevance=concat_relevance)
def concat(ins: Ins, node: Node) -> torch.Tensor:
    """The inputs concatenated along ``axis``."""
    return torch.cat(list(ins), dim=int(node.at["axis"]))  # type: ignore[arg-type]


def concat_two(seed: int) -> Net:
    net = stem(seed)
    a = net.conv(4, 3, pads=1, x="fork")
    b = net.conv(4, 1, x="fork")
    net.op("Concat", [a, b], axis=1)
    net.relu()
    net.conv(C, 3, pads=1)
    net.relu()
    return net


def concat_dense(seed: int) -> Net:
    """DenseNet style: the fork itself is concatenated with a conv of it."""
    net = stem(seed)
    net.conv(4, 3, pads=1, x="fork")
    b = net.relu()
    net.op("Concat", ["fork", b], axis=1)
    net.conv(C, 3, pads=1)
    net.relu()
    return net


def concat_three_relu(seed: int) -> Net:
    """Three Relu branches of different widths, concatenated right before the global pool."""
    net = stem(seed)
    outs = []
    for width, k in ((2, 1), (3, 3), (5, 5)):
        net.conv(width, k, pads=k // 2, x="fork")
        outs.append(net.relu())
    net.op("Concat", outs, axis=1)
    return net


def concat_height(seed: int) -> Net:
    """Concat along H (axis 2)."""
    net = stem(seed)
    a = net.conv(C, 3, pads=1, x="fork")
    b = net.conv(C, 3, stride=(2, 1), pads=1, x="fork")
    net.op("Concat", [a, b], axis=2)
    net.relu()
    net.conv(C, 3, pads=1)
    net.relu()
    return net


CONCAT_MODELS: dict[str, Callable[[int], Net]] = {
    "two": concat_two,
    "dense": concat_dense,
    "three-relu": concat_three_relu,
    "height": concat_height,
}


@pytest.mark.parametrize("name", list(CONCAT_MODELS))
def test_concat_below_split(name: str) -> None:
    net = CONCAT_MODELS[name](seed=20)
    compare_with_reference(net.head(), random_input(net.in_shape, seed=5))


@pytest.mark.parametrize("name", list(CONCAT_MODELS))
def test_concat_above_split(name: str) -> None:
    net = CONCAT_MODELS[name](seed=21)
    compare_with_reference(net.head(), random_input(net.in_shape, seed=6), layer="fork")


def test_concat_then_residual_share() -> None:
    """A Concat feeding a residual Add (Inception/ResNet mix), ``share`` and ``residual``."""
    net = stem(22)
    a = net.conv(3, 3, pads=1, x="fork")
    b = net.conv(3, 1, x="fork")
    net.op("Concat", [a, b], axis=1)
    net.relu()
    main = net.conv(C, 3, pads=1)
    net.op("Add", [main, "fork"])
    net.relu()
    model = net.head()
    x = random_input(net.in_shape, seed=7)
    for add_rule in ("residual", "share"):
        compare_with_reference(model, x, add_rule=add_rule)
