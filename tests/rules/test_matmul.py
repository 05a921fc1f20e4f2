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
from tests.reference.tokens import (
    attention_to_v,
    bounded_dense,
    conservative,
    equilibrium,
)
from tests.rules.scaffold import CLASSES, FEATURES, Dense, mlp

#: what attention probabilities may pass between their Softmax and the product with V
PROBABILITY_PATH = ("Dropout", "Cast", "Reshape", "Transpose", "Identity", "Squeeze",
                    "Unsqueeze")


def from_softmax(walk: Walk, name: str) -> bool:
    """``name`` is softmax probabilities (possibly reshaped, transposed, cast)."""
    graph = walk.graph
    while graph.producer_op(name) in PROBABILITY_PATH:
        name = graph.nodes[graph.producer[name]].input[0]
    return graph.producer_op(name) == "Softmax"


def _layer_output_and_bias(walk: Walk, node: Node) -> tuple[torch.Tensor, torch.Tensor | None]:
    """z = x·W + b: the output of the bias Add right after the MatMul (its only reader), if
    any, and b."""
    graph, y = walk.graph, node.outputs[0]
    readers = graph.readers(y)
    if len(readers) == 1 and readers[0].op_type == "Add":
        c = next((i for i in readers[0].input if i in graph.const), None)
        w = walk.value(node.inputs[1])
        if c is not None and walk.value(c).numel() == w.shape[-1]:
            return walk.value(readers[0].output[0]), walk.value(c).reshape(-1)
    return walk.value(y), None


def token_layer(walk: Walk, node: Node, R: torch.Tensor) -> torch.Tensor:
    """ae-tokens T3 for a per-token layer ``x @ W (+ b)``: conservative (LRP-ε, the bias
    absorbs) or equilibrium (rule 4.2, the bias an always-active input); where it reads the
    model input, the bounded rule (4.3)."""
    x, w = walk.value(node.inputs[0]), walk.value(node.inputs[1])
    if node.inputs[0] in walk.raw:  # reads the input: the bounded rule 4.3
        return bounded_dense(x, w, R)
    z, b = _layer_output_and_bias(walk, node)
    if walk.token_linear == "conservative":
        return conservative(x, z, R, lambda t: t @ w)
    return equilibrium(x, w, b, R)


def matmul_relevance(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Rule 4.4 for ``x @ W`` with a constant 2-D ``W`` and a 2-D input; on tokens (rank >= 3)
    of a token model, the per-token rules; of two tensors, attention mixing ``P @ V`` (P a
    gate, V by the z-rule with P fixed, ae-tokens T3)."""
    a, b = node.inputs
    if a not in walk.graph.const and b not in walk.graph.const:
        if not from_softmax(walk, a):
            raise NotImplementedError("MatMul of two tensors that is not attention mixing")
        return [(b, attention_to_v(walk.value(a), walk.value(b), R))]
    if node.inputs[0] in walk.graph.const or node.inputs[1] not in walk.graph.const:
        raise NotImplementedError("MatMul needs a constant weight as 2nd operand")
    x, w = walk.value(node.inputs[0]), walk.value(node.inputs[1])
    if walk.token and x.dim() >= 3 and w.dim() == 2:
        return [(a, token_layer(walk, node, R))]
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
