"""Mul: of two tensors, rule 4.8 (gating: SiLU ``x·sigmoid(x)`` in both operand orders,
HardSwish written ``x·HardSigmoid(x)``, GELU's exported gates (ae-tokens T3, in test_erf.py),
squeeze-and-excitation with a [N,C,1,1] gate broadcast
over H,W): all relevance to the signal below the split, the product rule in the head, a Mul
with no gate or two gates refused below the split; with a constant operand (scaling),
pass-through (4.5). Explainer vs the torch reference."""

from __future__ import annotations

import pytest
import torch

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import one_data_input
from tests.rules.scaffold import (
    SHAPE,
    Block,
    C,
    check_above,
    check_at_split,
    check_before_first_conv,
    check_below,
    const_operand,
)

GATES = ("Sigmoid", "HardSigmoid", "QLinearSigmoid")
#: Seen through when looking for a gate: a deployed graph's quantizations (docs/deployed.md).
QUANTIZATIONS = ("QuantizeLinear", "DequantizeLinear")
#: what exporters write around GELU's Erf / Tanh (with constants; Neg in Keras' erfc form)
GELU_ARITHMETIC = ("Add", "Sub", "Mul", "Div", "Pow", "Neg")


def _source(walk: Walk, name: str) -> str:
    """``name`` before any scaling by constants (x·0.5 and x/√2 come from x)."""
    graph = walk.graph
    while graph.producer_op(name) in ("Mul", "Div"):
        node = graph.nodes[graph.producer[name]]
        data = graph.data_inputs(node)
        if len(data) != 1 or (node.op_type == "Div" and data[0] != node.input[0]):
            break
        name = data[0]
    return name


def is_gelu_gate(walk: Walk, gate: str, signal: str) -> bool:
    """ae-tokens T3: ``gate`` is computed from ``signal``'s source alone, by constant
    arithmetic around an Erf or Tanh (``0.5·(1 + erf(x/√2))``, the tanh form)."""
    graph, source = walk.graph, _source(walk, signal)
    todo, core = [gate], False
    while todo:
        name = todo.pop()
        if name in graph.const or _source(walk, name) == source:
            continue
        op = graph.producer_op(name)
        if op in ("Erf", "Tanh"):
            core = True
        elif op not in GELU_ARITHMETIC:
            return False
        todo.extend(i for i in graph.nodes[graph.producer[name]].input if i)
    return core


def gate_op(walk: Walk, name: str) -> str | None:
    """The op that produces ``name``, looking through quantizations."""
    op = walk.graph.producer_op(name)
    while op in QUANTIZATIONS:
        name = walk.graph.nodes[walk.graph.producer[name]].input[0]
        op = walk.graph.producer_op(name)
    return op


def gate_signal(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Rule 4.8: the operand of a two-tensor Mul that is not a Sigmoid/HardSigmoid output (the
    signal) receives all of R; the gate receives nothing. With one data input: pass-through."""
    data = walk.data(node)
    if len(data) != 2:
        return one_data_input(walk, node, R)
    gates = [d for d in data if gate_op(walk, d) in GATES]
    if not gates:
        gates = [d for d, other in (data, data[::-1]) if is_gelu_gate(walk, d, other)]
    if len(gates) != 1:
        raise NotImplementedError("Mul of two tensors without exactly one gate")
    signal = next(d for d in data if d != gates[0])
    if walk.env[signal].shape != R.shape:
        raise NotImplementedError("gating Mul with a broadcast signal")
    return [(signal, R)]


@reference("Mul", relevance=gate_signal)
def mul(ins: Ins, node: Node) -> torch.Tensor:
    """``a · b`` (broadcasting)."""
    return ins[0] * ins[1]  # type: ignore[operator]


# ----------------------------------------------------------------------------- a constant operand

CONST_CASES: dict[str, Block] = {
    "mul-scalar": const_operand("Mul", "scalar"),
    "mul-chw": const_operand("Mul", "chw"),
    "mul-const-times-x": const_operand("Mul", "map", first=True),
}


@pytest.mark.parametrize("name", list(CONST_CASES))
def test_mul_constant_below_split(name: str) -> None:
    """Rule 4.5: a constant scale passes relevance through unchanged."""
    check_below(CONST_CASES[name])


@pytest.mark.parametrize("name", list(CONST_CASES))
def test_mul_constant_above_split(name: str) -> None:
    """Mul by a constant in the head: its VJP."""
    check_above(CONST_CASES[name])


def test_mul_constant_at_split() -> None:
    """The split tensor is the output of a Mul by a scalar."""
    check_at_split(CONST_CASES["mul-scalar"], ratio=1.5)


def test_mul_add_before_first_conv() -> None:
    """``x · 0.7 + 0.7`` before the first conv: that conv keeps the bounded rule (4.3)."""
    check_before_first_conv(const_operand("Mul", "scalar"), const_operand("Add", "scalar"))


# ----------------------------------------------------------------------------- gating (4.8)


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


@pytest.mark.parametrize("name", list(BLOCKS))
def test_gate_below_split(name: str) -> None:
    """Rule 4.8: all relevance to the signal; the gate path gets none."""
    check_below(BLOCKS[name])


@pytest.mark.parametrize("name", list(BLOCKS))
def test_gate_above_split(name: str) -> None:
    """The gated Mul lies in the head: the product rule for both operands."""
    check_above(BLOCKS[name])


@pytest.mark.parametrize("name", ["silu", "squeeze-excite"])
def test_gate_at_split(name: str) -> None:
    """The split tensor is the gated output (right before the global pool)."""
    check_at_split(BLOCKS[name], scale=2.0)


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
