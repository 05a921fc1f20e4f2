"""MatMul: with a constant 2-D weight on the relevance path, rule 4.4 (a 1×1 conv over a 1×1
map) in MLPs whose split lies before the last dense layer and on top of a conv stack, its VJP in
the head. Explainer vs the torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net, compare_with_reference, explain, random_input
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
from tests.rules.token_scaffold import (
    TOKENS,
    WIDTH,
    assert_finite,
    compare_tokens,
    linear,
    mean_head,
    token_input,
)

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
    """Rule 4.4 for ``x @ W`` with a constant 2-D ``W`` and a 2-D input; on tokens (rank >= 3,
    or a sample's tokens as the rows of a matrix) of a token model, the per-token rules; of
    two tensors, attention mixing ``P @ V`` (P a gate, V by the z-rule with P fixed,
    ae-tokens T3)."""
    a, b = node.inputs
    if a not in walk.graph.const and b not in walk.graph.const:
        if not from_softmax(walk, a):
            raise NotImplementedError("MatMul of two tensors that is not attention mixing")
        return [(b, attention_to_v(walk.value(a), walk.value(b), R))]
    if node.inputs[0] in walk.graph.const or node.inputs[1] not in walk.graph.const:
        raise NotImplementedError("MatMul needs a constant weight as 2nd operand")
    x, w = walk.value(node.inputs[0]), walk.value(node.inputs[1])
    if walk.token and w.dim() == 2 and (x.dim() >= 3 or (x.dim() == 2 and x.shape[0] > 1)):
        # one sample at a time: a 2-D input with several rows holds that sample's tokens (TF's
        # Tensordot writes Keras' per-token Dense layers on [N·H·W, C])
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


# ----------------------------------------------------------------------------- token models


def attention(net: Net, heads: int = 1, moved: bool = False) -> str:
    """Self-attention on ``[N, T, D]``: q, k, v per-token layers, ``softmax(q·kᵀ/√d)·v``, an
    output layer and the residual Add. ``heads`` > 1 splits D into heads ``[N, H, T, d]``;
    ``moved`` works like torch's MultiheadAttention, in ``[T, N·H, d]`` (the sample axis
    merged with the heads and moved off the front)."""
    x = net.cur
    tokens, width = net.shape(x)[-2:]
    d = width // heads
    q, k, v = (linear(net, width, x=x) for _ in range(3))
    if moved:  # [N, T, D] -> [T, N, D] -> [T, N·H, d] -> [N·H, T, d]
        q, k, v = (net.op("Transpose", [net.op("Reshape", [
            net.op("Transpose", [t], perm=[1, 0, 2]),
            net.const(np.asarray([tokens, -1, d], np.int64))])], perm=[1, 0, 2])
            for t in (q, k, v))
        kt = net.op("Transpose", [k], perm=[0, 2, 1])
    elif heads > 1:  # [N, T, D] -> [N, H, T, d]
        q, k, v = (net.op("Transpose", [net.op("Reshape", [
            t, net.const(np.asarray([0, tokens, heads, d], np.int64))])], perm=[0, 2, 1, 3])
            for t in (q, k, v))
        kt = net.op("Transpose", [k], perm=[0, 1, 3, 2])
    else:
        kt = net.op("Transpose", [k], perm=[0, 2, 1])
    scores = net.op("Mul", [net.op("MatMul", [q, kt]), net.const(np.float32(d ** -0.5))])
    p = net.op("Softmax", [scores], axis=-1)
    o = net.op("MatMul", [p, v])
    if moved:  # [N·H, T, d] -> [T, N·H, d] -> [T, N, D] -> [N, T, D]
        o = net.op("Transpose", [net.op("Reshape", [
            net.op("Transpose", [o], perm=[1, 0, 2]),
            net.const(np.asarray([tokens, -1, width], np.int64))])], perm=[1, 0, 2])
    elif heads > 1:
        o = net.op("Reshape", [net.op("Transpose", [o], perm=[0, 2, 1, 3]),
                               net.const(np.asarray([0, tokens, width], np.int64))])
    return net.op("Add", [x, linear(net, width, x=o)])


ATTENTION = {"one-head": {}, "two-heads": {"heads": 2}, "torch-mha-layout": {"heads": 2,
                                                                             "moved": True}}


@pytest.mark.parametrize("case", list(ATTENTION))
@pytest.mark.parametrize("linear_rule", ["conservative", "equilibrium"])
def test_attention_block_matches_reference(case: str, linear_rule: str) -> None:
    """P a gate (nothing to Q·Kᵀ or the softmax), V by the z-rule with P fixed, per-token
    layers under both rules, the residual by z; LayerNorm first (a token model)."""
    net = Net((TOKENS, 4), seed=11)
    linear(net, WIDTH)
    net.op("LayerNormalization", [net.cur, net.const(0.5 + net.rng.random(WIDTH))], axis=-1)
    split = attention(net, **ATTENTION[case])  # type: ignore[arg-type]
    model = mean_head(net, split, WIDTH)
    compare_tokens(model, token_input(12), split, linear=linear_rule)


def test_attention_mixing_conserves() -> None:
    """Σ R_V = Σ R at the mixing (P fixed, the stabiliser aside), and LayerNorm without β
    conserves too: input -> LN -> (V = LN output, P from q, k layers) -> P·V = the split
    (``layer``): the relevance at the input sums to Σ R0 = ±1."""
    net = Net((TOKENS, 4), seed=13)
    ln = net.op("LayerNormalization", [net.cur, net.const(0.5 + net.rng.random(4))], axis=-1)
    q, k = (linear(net, 4, x=ln) for _ in range(2))
    p = net.op("Softmax", [net.op("MatMul", [q, net.op("Transpose", [k], perm=[0, 2, 1])])],
               axis=-1)
    mixed = net.op("MatMul", [p, ln], name="mixed")
    explainer = aeq_onnx.compile_explainer(mean_head(net, mixed, 4), layer="mixed")
    out = explain(explainer, token_input(14, batch=3))
    totals = out["relevance"].sum(axis=(1, 2))
    np.testing.assert_allclose(totals, out["initial_relevance"].sum(axis=(1, 2)), rtol=1e-4)
    np.testing.assert_allclose(np.abs(totals), 1.0, rtol=1e-4)


def test_attention_finite_on_dead_and_extreme_inputs() -> None:
    """All-zero tokens (every denominator 0) and 1e3-scaled ones: finite everywhere."""
    net = Net((TOKENS, 4), seed=13)
    linear(net, WIDTH)
    net.op("LayerNormalization", [net.cur, net.const(np.ones(WIDTH))], axis=-1)
    split = attention(net, heads=2)
    model = mean_head(net, split, WIDTH)
    for x in (np.zeros((2, TOKENS, 4), np.float32), token_input(14, scale=1e3)):
        assert_finite(model, x)


def test_projections_as_einsum_list_every_unsupported_node() -> None:
    """Per-token layers written with Einsum (``einsum('ntd,de->nte', x, W)``: not a matrix
    product of two batched operands, so no converter rewrites them): one typed error naming
    both Einsums relevance must cross, with the opset, and the LayerNorm after them, whose
    sample axis the layout tracking lost there. (Attention written as batched-matmul
    Einsums, q·kᵀ and P·v, becomes MatMul in the converters: test_attention_as_einsum.)"""
    net = Net((TOKENS, 4), seed=15)
    x = linear(net, WIDTH)
    v = net.op("Einsum", [x, net.weight((WIDTH, WIDTH), WIDTH)], equation="ntd,de->nte",
               name="v_proj")
    out = net.op("Einsum", [v, net.weight((WIDTH, WIDTH), WIDTH)], equation="ntd,de->nte",
                 name="o_proj")
    split = net.op("LayerNormalization", [net.op("Add", [x, out]), net.const(np.ones(WIDTH))],
                   axis=-1)
    with pytest.raises(UnsupportedOpError) as info:
        aeq_onnx.compile_explainer(mean_head(net, split, WIDTH))
    message = str(info.value)
    assert message.count("Einsum (node") == 2
    assert "Einsum (node 'n_v_proj', opset 17)" in message
    assert "Einsum (node 'n_o_proj', opset 17)" in message
    assert "LayerNormalization" in message and "sample axis lies is unknown" in message


def test_attention_as_einsum() -> None:
    """``einsum('ntd,nsd->nts', q, k)`` and ``einsum('nts,nsd->ntd', P, v)`` (MaxViT writes its
    attention so): the converters make them MatMuls, and the explanation matches the
    reference run on the original Einsums."""
    net = Net((TOKENS, 4), seed=15)
    x = linear(net, WIDTH)
    net.op("LayerNormalization", [x, net.const(np.ones(WIDTH))], axis=-1)
    ln = net.cur
    q, k, v = (linear(net, WIDTH, x=ln) for _ in range(3))
    p = net.op("Softmax", [net.op("Einsum", [q, k], equation="ntd,nsd->nts")], axis=-1)
    split = net.op("Add", [ln, net.op("Einsum", [p, v], equation="nts,nsd->ntd")])
    compare_tokens(mean_head(net, split, WIDTH), token_input(16), split)


def test_product_of_two_signals_refused_below_split() -> None:
    """A MatMul of two tensors whose first operand is not softmax probabilities, where
    relevance reaches it: refused with the reason."""
    net = Net((TOKENS, 4), seed=16)
    x = linear(net, WIDTH)
    a = net.op("Transpose", [linear(net, TOKENS, x=x)], perm=[0, 2, 1])
    split = net.op("MatMul", [a, x])
    with pytest.raises(UnsupportedOpError, match="not attention mixing"):
        aeq_onnx.compile_explainer(mean_head(net, split, WIDTH))
