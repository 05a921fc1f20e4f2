"""Gemm: with a constant weight on the relevance path, rule 4.4 (a 1×1 conv over a 1×1 map) in
MLPs whose split lies before the last dense layer, its VJP in the head; transB 0/1, alpha,
beta, bias shapes, negative activations, explicit targets, an image MLP. Explainer vs the torch
reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.formulas import gemm_rule
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference
from tests.reference.tokens import bounded_dense, conservative, equilibrium
from tests.rules.scaffold import CLASSES, FEATURES, Dense, mlp


def constant_weight(walk: Walk, node: Node) -> list[torch.Tensor | None]:
    """The node's inputs (values), after checking rule 4.4's precondition."""
    if node.inputs[0] in walk.graph.const or node.inputs[1] not in walk.graph.const:
        raise NotImplementedError(f"{node.op} needs a constant weight as 2nd operand")
    return [walk.value(i) if i else None for i in node.inputs]


def operands(ins: Ins, at: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Gemm's ``A'`` and ``alpha·B'`` (after transA/transB) so that ``Y = A' @ (alpha·B') + βC``."""
    a, b = ins[0], ins[1]
    assert a is not None and b is not None
    a = a.T if at.get("transA", 0) else a
    b = b.T if at.get("transB", 0) else b
    return a, b * float(at.get("alpha", 1.0))


def gemm_relevance(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Rule 4.4 on ``A' @ (alpha·B')`` (the bias is ignored), transposed back for transA; below
    the split of a token model every Gemm is a per-token layer (exporters flatten the tokens
    of all samples into its rows): the token rules with its bias ``beta·C``."""
    ins = constant_weight(walk, node)
    a, b = operands(ins, node.at)
    if walk.token and not node.at.get("transA", 0):
        x = walk.data(node)[0]
        if x in walk.raw:
            return [(x, bounded_dense(a, b, R))]
        if walk.token_linear == "conservative":
            return [(x, conservative(a, walk.value(node.outputs[0]), R, lambda t: t @ b))]
        bias = None if len(ins) < 3 or ins[2] is None else (
            float(node.at.get("beta", 1.0)) * ins[2]).reshape(-1)
        return [(x, equilibrium(a, b, bias, R))]
    r_in = gemm_rule(a, b.T, R)
    return [(walk.data(node)[0], r_in.T if node.at.get("transA", 0) else r_in)]


@reference("Gemm", relevance=gemm_relevance, traits=["linear", "dense"])
def gemm(ins: Ins, node: Node) -> torch.Tensor:
    """``A' @ (alpha·B') + beta·C``."""
    a, b = operands(ins, node.at)
    y = a @ b
    if len(ins) > 2 and ins[2] is not None:
        y = y + float(node.at.get("beta", 1.0)) * ins[2]
    return y


def gemm_block(**kw: object) -> Dense:
    return lambda net, out: net.gemm(out, **kw)  # type: ignore[arg-type]


def gemm_row_bias(net: Net, out: int) -> str:
    """Gemm with a [1, out] bias."""
    w = net.weight((out, net.shape()[0]), fan_in=net.shape()[0])
    b = net.const(0.1 * np.ones((1, out)), "b")
    return net.op("Gemm", [net.cur, w, b], transB=1)


DENSE: dict[str, Dense] = {
    "gemm-transB1": gemm_block(trans_b=1),
    "gemm-transB0": gemm_block(trans_b=0),
    "gemm-alpha0.5": gemm_block(alpha=0.5),
    "gemm-transB0-alpha2-beta0.5": gemm_block(trans_b=0, alpha=2.0, beta=0.5),
    "gemm-nobias": gemm_block(bias=False),
    "gemm-row-bias": gemm_row_bias,
}


@pytest.mark.parametrize("kind", list(DENSE))
def test_gemm_mlp_relevance(kind: str) -> None:
    """Rule 4.4 on two dense layers below the default split (the input of the last one)."""
    net = mlp(DENSE[kind], seed=1)
    got = compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=2))
    assert got.reference["split"] == "hidden"


@pytest.mark.parametrize("act", ["tanh", "leaky"])
@pytest.mark.parametrize("kind", ["gemm-transB1", "gemm-transB0-alpha2-beta0.5"])
def test_gemm_mlp_negative_activations(kind: str, act: str) -> None:
    """Dense relevance with negative inputs (inactive neurons get the negative mass)."""
    net = mlp(DENSE[kind], act=act, seed=3)
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=4),
                           ratio=1.5)


@pytest.mark.parametrize("kind", list(DENSE))
def test_gemm_mlp_vjp(kind: str) -> None:
    """Split after the first activation: the other dense layers are differentiated."""
    net = mlp(DENSE[kind], seed=5)
    first_act = net.nodes[[n.op_type for n in net.nodes].index("Relu")].output[0]
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=6),
                           layer=first_act)


@pytest.mark.parametrize("target", [[0, 4], [3, 3]], ids=str)
def test_gemm_mlp_explicit_targets(target: list[int]) -> None:
    net = mlp(DENSE["gemm-transB1"], seed=7)
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=8),
                           target=target)


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
