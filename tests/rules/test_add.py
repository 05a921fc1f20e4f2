"""Add: of two non-constant tensors, rule 4.7 (``residual``, ``share`` and ``z``) on residual
joins, equal branches, an input shortcut and dense blocks; with a constant operand (bias),
pass-through (4.5); in the head, its VJP with both operands' gradients summed at the fork.
Explainer vs the torch reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest
import torch

import aeq_onnx
from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import join, one_data_input
from tests.reference.tokens import absorb
from tests.rules.scaffold import (
    Block,
    C,
    check_above,
    check_below,
    const_operand,
    stem,
)
from tests.rules.token_scaffold import (
    TOKENS,
    WIDTH,
    compare_tokens,
    linear,
    mean_head,
    token_input,
)

SIZE = 10
ADD_RULES = ["residual", "share", "z"]


def is_layer_bias(walk: Walk, node: Node) -> bool:
    """An Add of a constant vector right after a MatMul with a constant weight, its only
    reader: the bias of that (per-token) layer, part of the layer's own rule."""
    graph, x = walk.graph, walk.data(node)[0]
    if graph.producer_op(x) != "MatMul" or len(graph.readers(x)) != 1:
        return False
    weight = graph.nodes[graph.producer[x]].input[1]
    c = next(i for i in node.inputs if i != x)
    return weight in graph.const and walk.value(c).numel() == walk.value(weight).shape[-1]


def add_relevance(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Rule 4.7 for two non-constant operands; pass-through (4.5) next to a constant, except in
    a token model after the first layer, where the constant absorbs its share (ae-tokens T3;
    a per-token layer's own bias passes R through to that layer, which counts it)."""
    data = walk.data(node)
    if len(data) == 2:
        return join(walk, data[0], data[1], R)
    if walk.token and len(data) == 1 and data[0] not in walk.raw and not is_layer_bias(
            walk, node):
        x = data[0]
        return [(x, absorb(walk.value(x), walk.value(node.outputs[0]), R))]
    return one_data_input(walk, node, R)


@reference("Add", relevance=add_relevance)
def add(ins: Ins, node: Node) -> torch.Tensor:
    """``a + b`` (broadcasting)."""
    return ins[0] + ins[1]  # type: ignore[operator]


# ----------------------------------------------------------------------------- a constant operand

CONST_CASES: dict[str, Block] = {
    "add-scalar": const_operand("Add", "scalar"),
    "add-channel": const_operand("Add", "channel"),
}


@pytest.mark.parametrize("name", list(CONST_CASES))
def test_add_constant_below_split(name: str) -> None:
    """Rule 4.5: a bias passes relevance through unchanged, between two convs."""
    check_below(CONST_CASES[name])


@pytest.mark.parametrize("name", list(CONST_CASES))
def test_add_constant_above_split(name: str) -> None:
    """Add of a constant in the head: gradient unchanged."""
    check_above(CONST_CASES[name])


# ----------------------------------------------------------------------------- two tensors


def identity_block(net: Net, src: str) -> str:
    """Conv3×3 → Relu → Conv3×3, added to ``src`` (identity shortcut), then Relu."""
    net.conv(C, 3, pads=1, x=src)
    net.relu()
    main = net.conv(C, 3, pads=1)
    net.op("Add", [main, src])
    return net.relu()


def residual_identity(seed: int) -> Net:
    net = stem(seed)
    identity_block(net, "fork")
    return net


def residual_identity_swapped(seed: int) -> Net:
    """The shortcut as the first Add operand."""
    net = stem(seed)
    net.conv(C, 3, pads=1)
    net.relu()
    main = net.conv(C, 3, pads=1)
    net.op("Add", ["fork", main])
    net.relu()
    return net


def residual_projection(seed: int) -> Net:
    """Main branch Conv3×3 → Relu → Conv3×3 (stride 2); shortcut Conv1×1 (stride 2)."""
    net = stem(seed)
    net.conv(C, 3, pads=1)
    net.relu()
    main = net.conv(8, 3, pads=1, stride=2)
    short = net.conv(8, 1, stride=2, x="fork")
    net.op("Add", [main, short])
    net.relu()
    return net


def two_blocks(seed: int) -> Net:
    """Two identity blocks in series (the fork of the second is the first block's output)."""
    net = stem(seed)
    first = identity_block(net, "fork")
    identity_block(net, first)
    return net


def equal_branches(seed: int) -> Net:
    """One conv on each side (not a residual join: ``residual`` falls back to ``share``)."""
    net = stem(seed)
    a = net.conv(C, 3, pads=1, x="fork")
    b = net.conv(C, 1, x="fork")
    net.op("Add", [a, b])
    net.relu()
    return net


def relu_branches(seed: int) -> Net:
    """Add of two non-negative operands (both branches end in Relu)."""
    net = stem(seed)
    net.conv(C, 3, pads=1, x="fork")
    a = net.relu()
    net.conv(C, 3, pads=1, x="fork")
    net.relu()
    net.conv(C, 1)
    b = net.relu()
    net.op("Add", [a, b])
    net.conv(C, 3, pads=1)
    net.relu()
    return net


def input_shortcut(seed: int) -> Net:
    """The fork is the model input itself: input + Conv(Relu(Conv(input)))."""
    net = Net((3, SIZE, SIZE), seed=seed)
    net.conv(3, 3, pads=1)
    net.relu(name="fork")
    main = net.conv(3, 3, pads=1)
    net.op("Add", [main, net.input])
    net.relu()
    net.conv(C, 3, pads=1)
    net.relu()
    return net


ADD_MODELS: dict[str, Callable[[int], Net]] = {
    "identity": residual_identity,
    "identity-swapped": residual_identity_swapped,
    "projection": residual_projection,
    "two-blocks": two_blocks,
    "equal-branches": equal_branches,
    "relu-branches": relu_branches,
    "input-shortcut": input_shortcut,
}


# Ratio 1.5 for the mode sweep: at r = 2 a hidden conv returns Σ R = 0 (the equilibrium), and a
# ``share`` join right below it rescales its branches to split that zero total, so everything
# upstream of the join is float rounding noise in both implementations (exactly 0 in exact
# arithmetic). ``residual`` with a real shortcut and ``z`` do not rescale: tested at r = 2 too.
SWEEP_RATIO = 1.5


@pytest.mark.parametrize("add_rule", ADD_RULES)
@pytest.mark.parametrize("name", list(ADD_MODELS))
def test_add_below_split(name: str, add_rule: str) -> None:
    """Rule 4.7 in each mode, on residual joins, equal branches and an input shortcut."""
    net = ADD_MODELS[name](seed=len(name))
    model = net.head()
    x = random_input(net.in_shape, seed=1)
    compare_with_reference(model, x, add_rule=add_rule, ratio=SWEEP_RATIO)


@pytest.mark.parametrize("add_rule", ["residual", "z"])
@pytest.mark.parametrize("name", ["identity", "identity-swapped", "projection", "two-blocks",
                                  "input-shortcut"])
def test_add_at_default_ratio(name: str, add_rule: str) -> None:
    """r = 2 (and r = 1 for ``residual``) where no ``share`` rescale is involved."""
    net = ADD_MODELS[name](seed=11)
    model, x = net.head(), random_input(net.in_shape, seed=2)
    compare_with_reference(model, x, add_rule=add_rule)
    if add_rule == "residual":
        compare_with_reference(model, x, add_rule=add_rule, ratio=1.0)


def test_residual_shortcut_gets_nothing() -> None:
    """``residual`` on an identity block sends nothing down the shortcut, so it differs from the
    ``z`` split (both match the reference)."""
    net = residual_identity(seed=12)
    model = net.head()
    x = random_input(net.in_shape, seed=3)
    got = compare_with_reference(model, x, add_rule="residual")
    z = compare_with_reference(model, x, add_rule="z")
    assert abs(got.outputs["relevance"] - z.outputs["relevance"]).max() > 1e-6


@pytest.mark.parametrize("name", ["identity", "projection", "equal-branches", "input-shortcut"])
def test_add_above_split(name: str) -> None:
    """The Add lies in the head: its VJP, with the gradients of both operands summed at the
    fork."""
    net = ADD_MODELS[name](seed=13)
    compare_with_reference(net.head(), random_input(net.in_shape, seed=4), layer="fork")


def test_split_inside_residual_block() -> None:
    """Split at the Relu inside a block: the Add and the shortcut lie in the head only."""
    net = stem(23)
    net.conv(C, 3, pads=1)
    net.relu(name="inner")
    main = net.conv(C, 3, pads=1)
    net.op("Add", [main, "fork"])
    net.relu()
    model = net.head()
    x = random_input(net.in_shape, seed=8)
    for add_rule in ADD_RULES:
        compare_with_reference(model, x, layer="inner", add_rule=add_rule)


@pytest.mark.parametrize("add_rule", ADD_RULES)
def test_same_tensor_twice(add_rule: str) -> None:
    """``Add(a, a)`` and ``Concat(a, a)``: both operands are the same tensor (fan-out sum)."""
    net = stem(24)
    net.conv(C, 3, pads=1)
    a = net.relu()
    net.op("Add", [a, a])
    net.conv(C, 3, pads=1)
    b = net.relu()
    net.op("Concat", [b, b], axis=1)
    net.conv(C, 3, pads=1)
    net.relu()
    compare_with_reference(net.head(), random_input(net.in_shape, seed=9), add_rule=add_rule,
                           ratio=SWEEP_RATIO)


@pytest.mark.parametrize("add_rule", ADD_RULES)
def test_dense_residual_block(add_rule: str) -> None:
    """A residual join of dense layers in an MLP (the split before the last Gemm)."""
    net = Net((10,), seed=25)
    net.gemm(8)
    fork = net.relu()
    net.gemm(8)
    net.relu()
    main = net.gemm(8)
    net.op("Add", [main, fork])
    net.relu()
    net.gemm(3, name="y")
    compare_with_reference(net.build(classes=3), random_input((10,), seed=10),
                           add_rule=add_rule, ratio=SWEEP_RATIO)


@pytest.mark.parametrize("add_rule", ADD_RULES)
def test_nested_residual_with_projection(add_rule: str) -> None:
    """``out = (F + conv(relu(conv(F)))) + conv1×1(F)``: the outer Add's first operand is an
    inner residual block (paths from the fork F with 0 and 2 convs), the second a 1×1
    projection (1 conv).

    Spec 4.7 ``residual``: the operand whose path from F holds fewer convs is the shortcut.
    The reference counts the *most* convs on any path (inner block: 2 > 1, so the 1×1
    projection is the shortcut and the inner block gets R); aeq_onnx counts the *fewest*
    (``GraphView.layer_counts``: inner block 0 < 1), so it sends all of R down the 1×1
    projection and nothing through the block's main branch."""
    net = stem(26)
    net.conv(C, 3, pads=1)
    net.relu()
    main = net.conv(C, 3, pads=1)
    inner = net.op("Add", [main, "fork"])
    short = net.conv(C, 1, x="fork")
    net.op("Add", [inner, short])
    net.relu()
    compare_with_reference(net.head(), random_input(net.in_shape, seed=11), add_rule=add_rule)


# ----------------------------------------------------------------------------- token models


def _token_block(add_pos: bool, residual: bool) -> tuple[onnx.ModelProto, str]:
    """input + c (before any layer: passes through) -> layer -> + position embedding
    (absorbs) -> LN -> layer -> ReLU -> layer (+ the LN output: a residual join)."""
    net = Net((TOKENS, 4), seed=21)
    net.op("Add", [net.cur, net.const(net.rng.standard_normal(4))])  # input normalisation
    linear(net, WIDTH)
    if add_pos:
        net.op("Add", [net.cur, net.const(net.rng.standard_normal((TOKENS, WIDTH)))])
    ln = net.op("LayerNormalization", [net.cur, net.const(0.5 + net.rng.random(WIDTH))],
                axis=-1)
    linear(net, WIDTH)
    net.relu()
    branch = linear(net, WIDTH)
    split = net.op("Add", [ln, branch]) if residual else branch
    return mean_head(net, split, WIDTH), split


@pytest.mark.parametrize("add_rule", ADD_RULES)
def test_token_model_constants_absorb_and_joins(add_rule: str) -> None:
    """ae-tokens T3: the position embedding absorbs its share, the input normalisation (no
    layer before it) passes through, the residual join follows the token Add rule."""
    model, split = _token_block(add_pos=True, residual=True)
    compare_tokens(model, token_input(22), split, add_rule=add_rule)


def test_token_constants_keep_their_share() -> None:
    """The biases and the position embedding absorb their share (ae-tokens T3): the input's
    relevance sums to less than |Σ R0| = 1 per sample, and the join rule recorded is z."""
    with_pos, split = _token_block(add_pos=True, residual=False)
    x = token_input(23)
    out = compare_tokens(with_pos, x, split)
    explainer = aeq_onnx.compile_explainer(with_pos)
    assert {p.key: p.value for p in explainer.metadata_props}["aeq_onnx.token_add_rule"] == "z"
    total = np.abs(out["relevance"].sum(axis=(1, 2)))
    assert (total < 1.0 - 1e-3).all()  # the embedding and the biases kept a share
