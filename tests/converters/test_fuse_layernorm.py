"""fuse_layernorm: the decomposed LayerNorm (ReduceMean, Sub, Pow/Mul, ReduceMean, Add ε, Sqrt,
Div or Reciprocal·Mul, Mul γ, Add β) becomes one LayerNormalization; outputs unchanged."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch

from aeq_onnx.converters import canonicalize, fuse_layernorm

HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'
SIG = "g (float[N, 5, 4] x) => (float[N, 5, 4] y) {\n"
STATS = """  m = ReduceMean<axes = [-1]>(x)
  d = Sub(x, m)
  {square}
  v = ReduceMean<axes = [-1]>(q)
  ve = Add(v, eps)
  s = Sqrt(ve)
"""
FUSED = {
    "div-pow-gamma-beta": ("q = Pow(d, two)", "n = Div(d, s)\n  ng = Mul(n, gamma)\n"
                           "  y = Add(ng, beta)\n"),
    "div-mul-gamma-only": ("q = Mul(d, d)", "n = Div(d, s)\n  y = Mul(n, gamma)\n"),
    "reciprocal-no-affine": ("q = Pow(d, two)", "r = Reciprocal(s)\n  y = Mul(d, r)\n"),
    "gamma-first-operand": ("q = Mul(d, d)", "n = Div(d, s)\n  ng = Mul(gamma, n)\n"
                            "  y = Add(beta, ng)\n"),
}


def _weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"eps": np.array(1e-5, np.float32), "two": np.array(2.0, np.float32),
            "gamma": (0.5 + rng.random(4)).astype(np.float32),
            "beta": rng.standard_normal(4).astype(np.float32)}


def _model(build, square: str, tail: str, rng: np.random.Generator) -> onnx.ModelProto:
    text = HEAD + SIG + STATS.format(square=square) + "  " + tail + "}"
    return build(text, **{k: v for k, v in _weights(rng).items() if k in text})


@pytest.mark.parametrize("case", list(FUSED))
def test_decomposed_layernorm_is_fused(build, same_outputs, ops, rng, case) -> None:
    square, tail = FUSED[case]
    model = _model(build, square, tail, rng)
    fused = fuse_layernorm.run(model)
    assert ops(fused) == ["LayerNormalization"]
    same_outputs(model, fused)


def test_statistic_read_elsewhere_stays(build, same_outputs, ops, rng) -> None:
    """The variance also feeds an output: nothing is fused (the pattern is not exact)."""
    text = (HEAD + "g (float[N, 5, 4] x) => (float[N, 5, 4] y, float[N, 5, 1] v) {\n"
            + STATS.format(square="q = Pow(d, two)") + "  y = Div(d, s)\n}")
    model = build(text, **{k: v for k, v in _weights(rng).items() if k in ("eps", "two")})
    assert ops(fuse_layernorm.run(model)) == ops(model)


def test_not_trailing_axes_stays(build, ops, rng) -> None:
    """Statistics over the tokens (axis 1) are no LayerNormalization: left as they are."""
    text = HEAD + SIG + STATS.format(square="q = Pow(d, two)").replace(
        "[-1]", "[1]") + "  y = Div(d, s)\n}"
    model = build(text, **{k: v for k, v in _weights(rng).items() if k in ("eps", "two")})
    assert "LayerNormalization" not in ops(fuse_layernorm.run(model))


def test_torch_layernorm_at_opset_14_is_fused(same_outputs) -> None:
    """TorchScript writes nn.LayerNorm decomposed below opset 17; canonicalize fuses it."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6),
                              torch.nn.Linear(6, 3)).eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, (torch.randn(2, 5, 4),), buffer, opset_version=14, dynamo=False,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    model = onnx.load_from_string(buffer.getvalue())
    assert "LayerNormalization" not in [n.op_type for n in model.graph.node]
    canonical = canonicalize(model)
    kinds = [n.op_type for n in canonical.graph.node]
    assert kinds.count("LayerNormalization") == 1 and "ReduceMean" not in kinds
    same_outputs(model, canonical)
