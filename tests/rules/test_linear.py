"""Dense layers, explainer vs torch reference: Gemm / MatMul with a constant weight on the
relevance path (spec 4.4: a 1×1 conv over a 1×1 map) in MLPs whose split lies before the last
dense layer, and their VJPs in the head. Gemm with transB 0/1, alpha, beta, bias shapes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.helpers import Net, compare_with_reference, random_input

FEATURES = 12
CLASSES = 5

Dense = Callable[[Net, int], str]


def gemm(**kw: object) -> Dense:
    return lambda net, out: net.gemm(out, **kw)  # type: ignore[arg-type]


def matmul(**kw: object) -> Dense:
    return lambda net, out: net.matmul(out, **kw)  # type: ignore[arg-type]


def gemm_row_bias(net: Net, out: int) -> str:
    """Gemm with a [1, out] bias."""
    w = net.weight((out, net.shape()[0]), fan_in=net.shape()[0])
    b = net.const(0.1 * np.ones((1, out)), "b")
    return net.op("Gemm", [net.cur, w, b], transB=1)


DENSE: dict[str, Dense] = {
    "gemm-transB1": gemm(trans_b=1),
    "gemm-transB0": gemm(trans_b=0),
    "gemm-alpha0.5": gemm(alpha=0.5),
    "gemm-transB0-alpha2-beta0.5": gemm(trans_b=0, alpha=2.0, beta=0.5),
    "gemm-nobias": gemm(bias=False),
    "gemm-row-bias": gemm_row_bias,
    "matmul-add": matmul(),
    "matmul-nobias": matmul(bias=False),
}

ACTIVATIONS = {"relu": ("Relu", {}), "tanh": ("Tanh", {}), "leaky": ("LeakyRelu", {"alpha": 0.2})}


def mlp(dense: Dense, act: str = "relu", seed: int = 0, last: Dense | None = None) -> Net:
    """input [N, 12] → dense(16) → act → dense(10) → act (``hidden``) → last(5) = ``y``."""
    op, attrs = ACTIVATIONS[act]
    net = Net((FEATURES,), seed=seed)
    dense(net, 16)
    net.op(op, [net.cur], **attrs)
    dense(net, 10)
    net.op(op, [net.cur], name="hidden", **attrs)
    (last or dense)(net, CLASSES)
    net.op("Identity", [net.cur], name="y")
    return net


@pytest.mark.parametrize("kind", list(DENSE))
def test_mlp_dense_relevance(kind: str) -> None:
    """Rule 4.4 on two dense layers below the default split (the input of the last one)."""
    net = mlp(DENSE[kind], seed=1)
    got = compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=2))
    assert got.reference["split"] == "hidden"


@pytest.mark.parametrize("act", ["tanh", "leaky"])
@pytest.mark.parametrize("kind", ["gemm-transB1", "gemm-transB0-alpha2-beta0.5", "matmul-add"])
def test_mlp_negative_activations(kind: str, act: str) -> None:
    """Dense relevance with negative inputs (inactive neurons get the negative mass)."""
    net = mlp(DENSE[kind], act=act, seed=3)
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=4),
                           ratio=1.5)


@pytest.mark.parametrize("kind", list(DENSE))
def test_mlp_dense_vjp(kind: str) -> None:
    """Split after the first activation: the other dense layers are differentiated."""
    net = mlp(DENSE[kind], seed=5)
    first_act = net.nodes[[n.op_type for n in net.nodes].index("Relu")].output[0]
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=6),
                           layer=first_act)


@pytest.mark.parametrize("target", [[0, 4], [3, 3]], ids=str)
def test_mlp_explicit_targets(target: list[int]) -> None:
    net = mlp(DENSE["gemm-transB1"], seed=7)
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=8),
                           target=target)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_mlp_with_softmax_output(op: str) -> None:
    """A final Softmax / LogSoftmax: the logits are its input (spec 3)."""
    net = mlp(DENSE["gemm-transB1"], seed=9)
    net.op(op, [net.cur], name="probs", axis=1)
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=10))


def test_image_mlp_flatten_then_dense() -> None:
    """An image model made of dense layers only: Flatten → Gemm → Relu → Gemm → Relu → Gemm,
    split named at the second Relu (so Flatten and two Gemms carry relevance)."""
    net = Net((2, 4, 4), seed=11)
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(12)
    net.relu()
    net.gemm(8)
    net.relu(name="hidden")
    net.gemm(CLASSES, name="y")
    compare_with_reference(net.build(classes=CLASSES), random_input((2, 4, 4), seed=12),
                           layer="hidden")


def test_cnn_with_dense_hidden_layer() -> None:
    """Conv → Relu → GAP → Flatten → Gemm → Relu (split) → Gemm: dense relevance on top of a
    conv stack, bounded rule at the first conv."""
    net = Net((3, 8, 8), seed=13)
    net.conv(6, 3, pads=1)
    net.relu()
    net.op("GlobalAveragePool", [net.cur])
    net.op("Flatten", [net.cur], axis=1)
    net.matmul(10)
    net.relu(name="hidden")
    net.gemm(CLASSES, trans_b=0, alpha=0.7, name="y")
    compare_with_reference(net.build(classes=CLASSES), random_input((3, 8, 8), seed=14),
                           layer="hidden")
