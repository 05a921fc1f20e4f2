"""canonicalize: the passes in order, on the golden models and on a model needing every pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from aeq_onnx import converters
from aeq_onnx.converters import (
    canonicalize,
    einsum_matmul,
    fold_batchnorm,
    fold_constants,
    fuse_layernorm,
    fuse_layernorm_tf,
    fuse_lrn,
    infer_shapes,
    legacy_batchnorm,
    opset,
    strip_identity,
    weight_inputs,
)
from aeq_onnx.converters._graph_utils import default_opset

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden"


def test_pipeline_order() -> None:
    """Weight inputs, spatial=0 BN before the opset upgrade, shapes before folding, LRN fused
    after folding, folding before BN, a decomposed LayerNorm (torch's, then Keras') fused once
    its constants are folded, Einsum products as MatMul, shapes last."""
    pipeline = converters.PIPELINE
    assert pipeline == [
        weight_inputs.run,
        legacy_batchnorm.run,
        opset.run,
        infer_shapes.run,
        fold_constants.run,
        fuse_lrn.run,
        strip_identity.run,
        fold_batchnorm.run,
        fold_constants.run,
        fuse_layernorm.run,
        fuse_layernorm_tf.run,
        einsum_matmul.run,
        infer_shapes.run,
    ]


@pytest.mark.parametrize("name", ["vgg_mini", "res_mini"])
def test_golden_models_keep_their_logits(same_outputs, ops, name) -> None:
    """The golden models come out valid, with the stored logits and the same outputs."""
    model = onnx.load(str(GOLDEN / f"{name}.onnx"))
    canonical = canonicalize(model)
    assert ops(canonical) == ops(model)  # already canonical: exported with BN folded, opset 17
    assert canonical.ir_version == 8
    same_outputs(model, canonical)
    golden = np.load(GOLDEN / f"{name}.npz")
    session = ort.InferenceSession(
        canonical.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (logits,) = session.run(None, {"input": golden["input"]})
    np.testing.assert_allclose(logits, golden["logits"], rtol=1e-4, atol=1e-5)


EVERYTHING = """<ir_version: 7, opset_import: ["" : 13]>
g (float[N, 3, 8, 8] input) => (float[N, 5] logits) {
  k = Constant<value=float {0.5}>()
  z = Identity(input)
  p = Pad(z, pads)
  c = Conv<kernel_shape=[3, 3]>(p, w, b)
  n = BatchNormalization(c, scale, shift, mean, var)
  r = Relu(n)
  d = Dropout(r)
  s = Shape(d)
  b0 = Gather<axis=0>(s, i0)
  b1 = Unsqueeze(b0, ax)
  rest = Slice(s, one, big)
  f = ReduceProd<keepdims=1>(rest)
  t = Concat<axis=0>(b1, f)
  flat = Reshape(d, t)
  h = Gemm<transB=1>(flat, fc, fcb)
  logits = Mul(h, k)
}"""


def test_every_pass_applies(build, same_outputs, ops) -> None:
    """Opset 13 with Constant, Identity, Pad, BN, Dropout and shape math: one clean graph.

    The zero Pad stays (folding it into the Conv would change AE relevance: docs/choices.md)."""
    rng = np.random.default_rng(5)
    weights = {
        "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "scale": rng.standard_normal(4).astype(np.float32),
        "shift": rng.standard_normal(4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32),
        "var": rng.uniform(0.5, 2, 4).astype(np.float32),
        "i0": np.array(0, np.int64),
        "ax": np.array([0], np.int64),
        "one": np.array([1], np.int64),
        "big": np.array([2**62], np.int64),
        "fc": rng.standard_normal((5, 256)).astype(np.float32),
        "fcb": rng.standard_normal(5).astype(np.float32),
    }
    model = build(EVERYTHING, **weights)
    canonical = canonicalize(model)
    assert ops(canonical) == [
        "Pad", "Conv", "Relu", "Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Gemm", "Mul"
    ]  # fmt: skip
    assert default_opset(canonical) == 17 and canonical.ir_version == 8
    pad, conv = canonical.graph.node[0], canonical.graph.node[1]
    assert pad.input[0] == "input" and conv.input[0] == pad.output[0]
    assert [list(a.ints) for a in conv.attribute if a.name == "pads"] == []
    assert {v.name for v in canonical.graph.value_info} >= {"n", "r", "flat"}
    same_outputs(model, canonical)
