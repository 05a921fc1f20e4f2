"""fuse_layernorm_tf: Keras' LayerNorm as tf2onnx writes it (TF moments: ReduceMean, shape-keeping
Reshape, Sub, Mul, ReduceMean, Add ε, Sqrt, Reciprocal; then Mul γ, x·s + (Neg(m)·s + β) or
x·s + (β − m·s)) becomes one LayerNormalization (between Transposes where the reduced axis is
not last); outputs unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from aeq_onnx.converters import fuse_layernorm_tf, infer_shapes

HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'
NCHW = "g (float[N, 4, 3, 3] x) => (float[N, 4, 3, 3] y) {\n"
FLAT = "g (float[N, 6] x) => (float[N, 6] y) {\n"
MOMENTS = """  m = ReduceMean<axes = [1]>(x)
  {centre}
  d = Sub(x, mc)
  q = Mul(d, d)
  v = ReduceMean<axes = [1]>(q)
  ve = Add(v, eps)
  sd = Sqrt(ve)
  r = Reciprocal(sd)
"""
#: exactly what tf2onnx writes for Keras 3's LayerNormalization on an NCHW map (the mean
#: through tf2onnx's Reshape to [-1, 1, H, W]), and its variants
TAILS = {
    "neg-gamma-beta": ("s = Mul(r, gamma)\n  xs = Mul(x, s)\n  nm = Neg(m)\n"
                       "  ms = Mul(nm, s)\n  t = Add(ms, beta)\n  y = Add(xs, t)\n"),
    "neg-gamma-no-beta": ("s = Mul(r, gamma)\n  xs = Mul(x, s)\n  nm = Neg(m)\n"
                          "  ms = Mul(nm, s)\n  y = Add(xs, ms)\n"),
    "sub-beta-gamma-first": ("s = Mul(gamma, r)\n  xs = Mul(s, x)\n  ms = Mul(m, s)\n"
                             "  t = Sub(beta, ms)\n  y = Add(t, xs)\n"),
    "no-gamma": ("xs = Mul(x, r)\n  nm = Neg(m)\n  ms = Mul(nm, r)\n  t = Add(ms, beta)\n"
                 "  y = Add(xs, t)\n"),
}


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    return {"eps": np.full((1,) * len(shape), 1e-3, np.float32),
            "gamma": (0.5 + rng.random(shape)).astype(np.float32),
            "beta": rng.standard_normal(shape).astype(np.float32),
            "shape": np.array([-1, 1, 3, 3], np.int64)}


def _model(build, rng, tail: str, nchw: bool = True):
    centre = "mc = Reshape(m, shape)" if nchw else "mc = Identity(m)"
    body = MOMENTS.format(centre=centre) + "  " + tail
    if not nchw:
        body = body.replace("  mc = Identity(m)\n", "").replace("Sub(x, mc)", "Sub(x, m)")
    text = HEAD + (NCHW if nchw else FLAT) + body + "}"
    weights = _weights(rng, (1, 4, 1, 1) if nchw else (1, 6))
    return build(text, **{k: v for k, v in weights.items() if k in text})


@pytest.mark.parametrize("case", list(TAILS))
def test_keras_layernorm_over_nchw_channels_is_fused(build, same_outputs, ops, rng,
                                                     case) -> None:
    """Over axis 1 of an NCHW map: Transpose, LayerNormalization over the last axis,
    Transpose back."""
    model = infer_shapes.run(_model(build, rng, TAILS[case]))  # as in the pipeline
    fused = fuse_layernorm_tf.run(model)
    assert ops(fused) == ["Transpose", "LayerNormalization", "Transpose"]
    same_outputs(model, fused)


def test_keras_layernorm_over_last_axis_is_one_op(build, same_outputs, ops, rng) -> None:
    """Keras' head LayerNorm on [N, C] (no Reshape of the mean): one op, no Transpose."""
    model = _model(build, rng, TAILS["neg-gamma-beta"], nchw=False)
    fused = fuse_layernorm_tf.run(model)
    assert ops(fused) == ["LayerNormalization"]
    same_outputs(model, fused)


def test_scale_read_elsewhere_stays(build, ops, rng) -> None:
    """The scale s also feeds an output: nothing is fused."""
    model = infer_shapes.run(_model(build, rng, TAILS["neg-gamma-beta"]))
    model.graph.output.append(model.graph.output[0].__class__(name="s"))
    assert ops(fuse_layernorm_tf.run(model)) == ops(model)


def test_x_times_m_s_is_no_layernorm(build, ops, rng) -> None:
    """``x·s + m·s`` (mean added back, not subtracted): not a LayerNorm, nothing is fused."""
    model = _model(build, rng, "s = Mul(r, gamma)\n  xs = Mul(x, s)\n  ms = Mul(m, s)\n"
                   "  y = Add(xs, ms)\n")
    assert ops(fuse_layernorm_tf.run(model)) == ops(model)
