"""Mul of two tensors (spec 4.8, gating), explainer vs torch reference: SiLU ``x·sigmoid(x)``
(both operand orders), HardSwish written ``x·HardSigmoid(x)``, squeeze-and-excitation
``x·sigmoid(fc(pool(x)))`` with a [N,C,1,1] gate broadcast over H,W — below the split (all
relevance to the signal) and above it (product-rule VJP with the broadcast gate's gradient
summed back); a Mul with no gate or two gates is refused below the split."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net, compare_with_reference, random_input

C = 6
SHAPE = (3, 10, 10)
Block = Callable[[Net], str]


def silu(gate_first: bool = False) -> Block:
    def add(net: Net) -> str:
        x = net.cur
        s = net.op("Sigmoid", [x])
        return net.op("Mul", [s, x] if gate_first else [x, s])

    return add


def hard_swish(net: Net) -> str:
    x = net.cur
    return net.op("Mul", [x, net.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)])


def squeeze_excite(hard: bool = False) -> Block:
    """x · sigmoid(conv1x1(relu(conv1x1(GAP(x))))): the gate is [N, C, 1, 1]."""

    def add(net: Net) -> str:
        x = net.cur
        net.op("GlobalAveragePool", [x])
        net.conv(3, 1)
        net.relu()
        net.conv(C, 1)
        gate = net.op("HardSigmoid" if hard else "Sigmoid", [net.cur])
        return net.op("Mul", [x, gate])

    return add


BLOCKS: dict[str, Block] = {
    "silu": silu(),
    "silu-gate-first": silu(gate_first=True),
    "hardswish-mul": hard_swish,
    "squeeze-excite": squeeze_excite(),
    "squeeze-excite-hard": squeeze_excite(hard=True),
}


def between_model(block: Block, seed: int) -> Net:
    """input → Conv3×3 → Relu (``early``) → Conv3×3 → block → Conv3×3 → Relu → head."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    block(net)
    net.conv(C, 3, pads=1)
    net.relu()
    return net


@pytest.mark.parametrize("name", list(BLOCKS))
def test_gate_below_split(name: str) -> None:
    """Rule 4.8: all relevance to the signal; the gate path gets none."""
    net = between_model(BLOCKS[name], seed=1)
    compare_with_reference(net.head(), random_input(SHAPE, seed=2, scale=3.0))


@pytest.mark.parametrize("name", list(BLOCKS))
def test_gate_above_split(name: str) -> None:
    """The gated Mul lies in the head: the product rule for both operands."""
    net = between_model(BLOCKS[name], seed=3)
    compare_with_reference(net.head(), random_input(SHAPE, seed=4, scale=3.0), layer="early")


@pytest.mark.parametrize("name", ["silu", "squeeze-excite"])
def test_gate_at_split(name: str) -> None:
    """The split tensor is the gated output (right before the global pool)."""
    net = Net(SHAPE, seed=5)
    net.conv(C, 3, pads=1)
    net.relu()
    net.conv(C, 3, pads=1)
    out = BLOCKS[name](net)
    got = compare_with_reference(net.head(), random_input(SHAPE, seed=6, scale=2.0))
    assert got.reference["split"] == out


def two_branch_mul(gates: int) -> Net:
    """Conv → Relu (``early``) → two convs → (Sigmoid on ``gates`` of them) → Mul."""
    net = Net(SHAPE, seed=7)
    net.conv(C, 3, pads=1)
    x = net.relu(name="early")
    a = net.conv(C, 3, pads=1, x=x)
    b = net.conv(C, 3, pads=1, x=x)
    if gates >= 1:
        a = net.op("Sigmoid", [a])
    if gates == 2:
        b = net.op("Sigmoid", [b])
    net.op("Mul", [a, b])
    net.conv(C, 3, pads=1)
    net.relu()
    return net


@pytest.mark.parametrize("gates", [0, 2], ids=["no-gate", "two-gates"])
def test_mul_without_one_gate_is_refused(gates: int) -> None:
    """Below the split, a Mul of two tensors needs exactly one gate."""
    model = two_branch_mul(gates).head()
    with pytest.raises(UnsupportedOpError, match="gate"):
        aeq_onnx.compile_explainer(model)


@pytest.mark.parametrize("gates", [0, 2], ids=["no-gate", "two-gates"])
def test_mul_without_one_gate_above_split(gates: int) -> None:
    """Above the split only the VJP is needed: any Mul of two tensors is fine there."""
    net = two_branch_mul(gates)
    compare_with_reference(net.head(), random_input(SHAPE, seed=8), layer="early")
