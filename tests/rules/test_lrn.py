"""LRN (across channels): pass-through below the split (spec 4.5, like BatchNormalization;
docs/choices.md), its exact VJP above it, windows of 1 to 9 channels; explainer vs the
torch reference, and the reference's forward vs onnxruntime's LRN kernel (which runs odd
sizes and rank 4 only: the others are refused)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net, random_input, run_model
from tests.reference.ae_torch import Graph, run_forward
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import (
    Block,
    C,
    between_model,
    check_above,
    check_at_split,
    check_before_first_conv,
    check_below,
)


@reference("LRN", relevance=pass_through)
def lrn(ins: Ins, node: Node) -> torch.Tensor:
    """``x / (bias + alpha/size · Σ_{c' in window(c)} x_{c'}²)^beta``, the window running from
    ``floor((size-1)/2)`` channels before ``c`` to ``ceil((size-1)/2)`` after (ONNX's LRN;
    torch's ``local_response_norm`` puts the extra channel of an even window before ``c``)."""
    x = ins[0]
    assert x is not None
    size = int(node.at["size"])
    alpha = float(node.at.get("alpha", 1e-4))
    beta = float(node.at.get("beta", 0.75))
    bias = float(node.at.get("bias", 1.0))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    squares = x * x
    channels = x.shape[1]
    zeros_before = torch.zeros_like(squares[:, :1]).expand(-1, before, *x.shape[2:])
    zeros_after = torch.zeros_like(squares[:, :1]).expand(-1, after, *x.shape[2:])
    padded = torch.cat([zeros_before, squares, zeros_after], dim=1)
    window_sum = sum(padded[:, k:k + channels] for k in range(size))
    return x / (bias + alpha / size * window_sum) ** beta  # type: ignore[operator]


def lrn_block(size: int, alpha: float = 0.5, beta: float = 0.75, bias: float = 1.0) -> Block:
    """LRN with a large alpha so that the normalisation changes the values visibly."""
    return lambda net: net.op("LRN", [net.cur], size=size, alpha=alpha, beta=beta, bias=bias)


def relu_lrn(size: int, **kw: float) -> Block:
    """Relu then LRN (AlexNet's order)."""
    return lambda net: (net.relu(), lrn_block(size, **kw)(net))[1]


CASES: dict[str, Block] = {
    "size5": lrn_block(5),
    "size3-beta1-bias2": lrn_block(3, alpha=1.0, beta=1.0, bias=2.0),
    "size1": lrn_block(1, alpha=2.0),
    "relu-size5-alexnet": relu_lrn(5, alpha=1e-4, beta=0.75, bias=1.0),
    "size9-wider-than-channels": lrn_block(9),
}


@pytest.mark.parametrize("name", list(CASES))
def test_lrn_below_split(name: str) -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_lrn_above_split(name: str) -> None:
    """LRN in the head: its exact VJP (split gradient and R0 vs torch autograd)."""
    check_above(CASES[name])


def test_lrn_at_split() -> None:
    """The split tensor is an LRN output (right before the global pool)."""
    check_at_split(relu_lrn(5))


def test_lrn_before_first_conv() -> None:
    """LRN on the input: the first conv keeps the bounded rule (4.3), LRN passes through."""
    check_before_first_conv(lrn_block(3, alpha=1e-3))


@pytest.mark.parametrize("size", [1, 3, 5, 7])
def test_reference_forward_is_onnxruntimes_lrn(size: int) -> None:
    """The reference's window is onnxruntime's: same output."""
    net = Net((C, 5, 5), seed=size)
    lrn_block(size, alpha=0.7, beta=0.6, bias=1.5)(net)
    model = net.build()
    x = random_input((C, 5, 5), seed=size)
    want = run_model(model, x)
    graph = Graph(model)
    with torch.no_grad():
        got = run_forward(graph, torch.from_numpy(x).double())[net.cur].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lrn_even_size_refused() -> None:
    """onnxruntime has no kernel for an even LRN window: refused before emitting, typed."""
    net = between_model(lrn_block(4), seed=1)
    with pytest.raises(UnsupportedOpError, match=r"LRN with an even size"):
        aeq_onnx.compile_explainer(net.head())


def test_lrn_rank3_refused() -> None:
    """onnxruntime's LRN kernel takes rank 4 only: a rank-3 LRN is refused, typed."""
    net = Net((3, 12), seed=21)
    net.op("Conv", [net.cur, net.weight((C, 3, 3), fan_in=9)], kernel_shape=[3], pads=[1, 1])
    net.relu()
    lrn_block(3)(net)
    net.op("Conv", [net.cur, net.weight((C, C, 3), fan_in=3 * C)], kernel_shape=[3],
           pads=[1, 1])
    net.relu()
    net.op("GlobalAveragePool", [net.cur])
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(5, name="y")
    with pytest.raises(UnsupportedOpError, match=r"LRN on a tensor of rank other than 4"):
        aeq_onnx.compile_explainer(net.build(classes=5))
