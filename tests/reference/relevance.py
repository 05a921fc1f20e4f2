"""Relevance functions shared by several op references (registered with
``@reference(op, relevance=...)`` in ``tests/rules/test_<op>.py``).

Each takes ``(walk, node, R)`` and returns ``[(input name, relevance)]`` for the node's
non-constant inputs; section numbers refer to ``shared/docs/ae-rules.md``.
"""

from __future__ import annotations

import torch

from tests.reference.formulas import add_rule, pool_rule, sdiv
from tests.reference.graph import residual_choice
from tests.reference.interpreter import Walk, forward_node
from tests.reference.registry import Node

Tensor = torch.Tensor
Flows = list[tuple[str, Tensor]]


def pass_through(walk: Walk, node: Node, R: Tensor) -> Flows:
    """Section 4.5: ``R_in = R`` on the data input (summed over broadcast axes, if any)."""
    x = walk.data(node)[0]
    return [(x, R.sum_to_size(walk.env[x].shape))]


def one_data_input(walk: Walk, node: Node, R: Tensor) -> Flows:
    """Section 4.5 for an arithmetic op whose other operands are constants; any other case
    has no rule."""
    data = walk.data(node)
    if len(data) != 1:
        raise NotImplementedError(f"no relevance rule for {node.op} with {len(data)} data inputs")
    return pass_through(walk, node, R)


def reshape_back(walk: Walk, node: Node, R: Tensor) -> Flows:
    """Section 4.9: Reshape/Flatten send R back reshaped to the input's shape."""
    x = walk.data(node)[0]
    return [(x, R.reshape(walk.env[x].shape))]


def mapping(walk: Walk, node: Node, R: Tensor) -> Flows:
    """Section 4.9: an op that only moves values sends R back along its own transpose (crop
    for Pad, scatter into zeros for Slice, inverse permutation, reshape), i.e. its VJP."""
    return [(walk.data(node)[0], walk.input_vjp(node, R))]


def z_through_vjp(walk: Walk, node: Node, R: Tensor) -> Flows:
    """Section 4.9 (Resize): the z-rule through the op's VJP, ``R_in = x · VJP(sdiv(R, y))``."""
    x = walk.data(node)[0]
    y = walk.value(node.outputs[0])
    return [(x, walk.value(x) * walk.input_vjp(node, sdiv(R, y)))]


def pooling(walk: Walk, node: Node, R: Tensor) -> Flows:
    """Section 4.6: the z-rule on the positive part through the node's own pooling (its
    forward with the other inputs kept), ``R_in = xp · VJP_pool(sdiv(R, pool(xp)))``."""
    x = walk.data(node)[0]
    rest = [walk.value(i) if i else None for i in node.inputs[1:]]
    return [(x, pool_rule(walk.value(x), R,
                          lambda t: forward_node(node, [t, *rest])))]  # type: ignore[arg-type,return-value]


def join(walk: Walk, a: str, b: str, R: Tensor) -> Flows:
    """Section 4.7 for two non-constant operands: ``residual`` sends all of R to the operand
    with more linear layers from the fork (``share`` when the counts are equal); ``share``
    and ``z`` split R by the z-rule (``share`` then rescales the branch totals)."""
    mode = walk.add_mode
    if mode == "residual":
        choice = residual_choice(walk.graph, a, b)
        if choice in ("a", "b"):
            return [(a if choice == "a" else b, R)]
        mode = "share"
    Ra, Rb = add_rule(walk.value(a), walk.value(b), R, mode)
    return [(a, Ra), (b, Rb)]
