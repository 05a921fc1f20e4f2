"""MatMul: with a constant 2-D weight on the relevance path, rule 4.4 (a 1×1 conv over a 1×1
map) in MLPs whose split lies before the last dense layer and on top of a conv stack, its VJP in
the head. Explainer vs the torch reference."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.formulas import gemm_rule
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference
from tests.rules.scaffold import CLASSES, FEATURES, Dense, mlp


def matmul_relevance(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Rule 4.4 for ``x @ W`` with a constant 2-D ``W`` and a 2-D input."""
    if node.inputs[0] in walk.graph.const or node.inputs[1] not in walk.graph.const:
        raise NotImplementedError("MatMul needs a constant weight as 2nd operand")
    x, w = walk.value(node.inputs[0]), walk.value(node.inputs[1])
    if x.dim() != 2 or w.dim() != 2:
        raise NotImplementedError("MatMul relevance needs a 2-D input and weight")
    return [(walk.data(node)[0], gemm_rule(x, w.T, R))]


@reference("MatMul", relevance=matmul_relevance, traits=["linear", "dense"])
def matmul(ins: Ins, node: Node) -> torch.Tensor:
    """``a @ b`` (numpy matmul semantics)."""
    return torch.matmul(ins[0], ins[1])  # type: ignore[arg-type]


def matmul_block(**kw: object) -> Dense:
    """MatMul with a constant weight, plus an Add of a bias unless ``bias=False``."""
    return lambda net, out: net.matmul(out, **kw)  # type: ignore[arg-type]


DENSE: dict[str, Dense] = {
    "matmul-add": matmul_block(),
    "matmul-nobias": matmul_block(bias=False),
}


@pytest.mark.parametrize("kind", list(DENSE))
def test_matmul_mlp_relevance(kind: str) -> None:
    """Rule 4.4 on two dense layers below the default split (the input of the last one)."""
    net = mlp(DENSE[kind], seed=1)
    got = compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=2))
    assert got.reference["split"] == "hidden"


@pytest.mark.parametrize("act", ["tanh", "leaky"])
def test_matmul_mlp_negative_activations(act: str) -> None:
    """Dense relevance with negative inputs (inactive neurons get the negative mass)."""
    net = mlp(DENSE["matmul-add"], act=act, seed=3)
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=4),
                           ratio=1.5)


@pytest.mark.parametrize("kind", list(DENSE))
def test_matmul_mlp_vjp(kind: str) -> None:
    """Split after the first activation: the other dense layers are differentiated."""
    net = mlp(DENSE[kind], seed=5)
    first_act = net.nodes[[n.op_type for n in net.nodes].index("Relu")].output[0]
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=6),
                           layer=first_act)


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
