"""LayerNormalization (ae-tokens T3): LRP-0 through the centring and scaling with σ held
constant, ``R_in = x·(s - mean s)``, ``s = γ/σ·sdiv_ε(R, y)`` (β absorbs its share); its exact
VJP in the head. Explainer vs the torch reference (σ detached), on tiny token models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net, explain
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference
from tests.reference.tokens import layer_norm_lrp0
from tests.rules.token_scaffold import (
    CHANNELS,
    WIDTH,
    assert_finite,
    compare_tokens,
    linear,
    token_input,
    token_model,
)


def _axes(x: torch.Tensor, node: Node) -> list[int]:
    return list(range(int(node.at.get("axis", -1)) % x.dim(), x.dim()))


def ln_relevance(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """LRP-0 with σ held constant (tests/reference/tokens.py); outside a token model too."""
    x = walk.value(node.inputs[0])
    ins = [walk.value(i) if i else None for i in node.inputs]
    gamma = ins[1] if len(ins) > 1 else None
    beta = ins[2] if len(ins) > 2 else None
    eps = float(node.at.get("epsilon", 1e-5))
    return [(node.inputs[0], layer_norm_lrp0(x, R, _axes(x, node), eps, gamma, beta))]


@reference("LayerNormalization", relevance=ln_relevance)
def layer_normalization(ins: Ins, node: Node) -> torch.Tensor:
    """``(x - mean)/√(var + ε)·γ + β`` over the axes from ``axis`` on."""
    x = ins[0]
    assert x is not None
    axes = _axes(x, node)
    shape = [x.shape[a] for a in axes]
    return F.layer_norm(x, shape, ins[1] if len(ins) > 1 else None,
                        ins[2] if len(ins) > 2 else None, float(node.at.get("epsilon", 1e-5)))


def ln_block(*, bias: bool = True, axis: int = -1, scale: float = 1.0):  # type: ignore[no-untyped-def]
    def block(net: Net) -> str:
        dims = net.shape()  # per sample
        shape = dims[axis % (len(dims) + 1) - 1:]
        gamma = net.const(scale * (0.5 + net.rng.random(shape)))
        ins = [net.cur, gamma] + ([net.const(net.rng.standard_normal(shape))] if bias else [])
        return net.op("LayerNormalization", ins, axis=axis, epsilon=1e-5)
    return block


CASES = {
    "gamma-beta": ln_block(),
    "gamma-only": ln_block(bias=False),
    "two-axes": ln_block(axis=1),
    "tiny-gamma": ln_block(scale=1e-3),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("initial", ["elementwise", "channel-mean"])
def test_layer_norm_matches_reference(name: str, initial: str) -> None:
    model, split = token_model(CASES[name], seed=1)
    compare_tokens(model, token_input(2), split, initial=initial)


def test_layer_norm_between_layers() -> None:
    """LN -> per-token layer -> ReLU -> LN: two LNs and a per-token layer under both rules."""
    def block(net: Net) -> str:
        ln_block()(net)
        linear(net, WIDTH)
        net.relu()
        return ln_block(bias=False)(net)
    model, split = token_model(block, seed=3)
    compare_tokens(model, token_input(4), split)
    compare_tokens(model, token_input(4), split, linear="equilibrium")


def test_layer_norm_conserves_without_beta() -> None:
    """Without β, Σ R_in = Σ R at the LN up to the stabiliser: Σ_c x_c (s_c - mean s) =
    Σ_c (x_c - mean x) γ_c R_c / (σ y_c) = Σ_c R_c. The LN reads the input and is the split's
    producer (``layer``), so the explainer's relevance is the LN's own R_in."""
    net = Net((5, CHANNELS), seed=5)
    net.op("LayerNormalization", [net.cur, net.const(0.5 + net.rng.random(CHANNELS))],
           name="ln", axis=-1)
    linear(net, WIDTH)
    net.op("ReduceMean", [net.cur], axes=[1], keepdims=0)
    net.gemm(3, trans_b=1)
    explainer = aeq_onnx.compile_explainer(net.build(classes=3), layer="ln")
    out = explain(explainer, token_input(6, batch=3))
    totals = out["relevance"].sum(axis=(1, 2))
    np.testing.assert_allclose(totals, out["initial_relevance"].sum(axis=(1, 2)), rtol=1e-4)
    np.testing.assert_allclose(np.abs(totals), 1.0, rtol=1e-4)


def test_layer_norm_dead_constant_extreme_inputs() -> None:
    """Constant tokens (σ = √ε), zeros and 1e4-scaled inputs: finite everywhere."""
    model, _ = token_model(ln_block(), seed=7)
    for x in (np.zeros((2, 5, CHANNELS), np.float32), np.ones((2, 5, CHANNELS), np.float32),
              token_input(8, scale=1e4)):
        assert_finite(model, x)


def test_layer_norm_with_used_statistics_refused() -> None:
    net = Net((5, CHANNELS), seed=9)
    linear(net, WIDTH)
    gamma = net.const(np.ones(WIDTH))
    net.nodes.append(onnx.helper.make_node(
        "LayerNormalization", [net.cur, gamma], ["ln", "ln_mean"], axis=-1))
    net.op("Add", ["ln", "ln_mean"])
    net.op("ReduceMean", [net.cur], axes=[1], keepdims=0)
    net.gemm(3, trans_b=1)
    with pytest.raises(UnsupportedOpError, match="mean or inverse deviation outputs are used"):
        aeq_onnx.compile_explainer(net.build(classes=3))

