"""Keras ``ConvNeXtTiny(weights=None)`` through tf2onnx compiles and explains (issue 21, item 5).

The seeded model of ``fixtures/keras_convnext.py`` (64 px NHWC input, pixels in [0, 255],
LayerNorm decomposed by tf2onnx, exact GELU through Erf, grouped 7x7 convs, layer scale,
residual Adds, softmax fused into the head Dense), converted at opset 17 and cached in
``fixtures/.cache/``. For a seeded batch of 2 images: the explainer's logits equal Keras'
(its head LayerNorm output times the head kernel plus bias) and their softmax Keras'
probabilities; the relevance keeps the NHWC layout, is finite and non-trivial for every image;
explaining each image alone gives the batch's relevance (batch = per-sample). The explainer's
metadata names the token rules it ran. The plain ONNX model's probabilities equal Keras' (the
conversion's workarounds keep the function).

Where the compile is refused for the LayerNorm and GELU nodes only (``KNOWN_GAP``: the token
rules do not cover Keras' forms yet), the explainer tests xfail with that reason; a refusal of
any other node fails them.

Needs the ``keras`` extra (``tensorflow-cpu``, ``tf2onnx``); skipped with the reason when they
are not installed. The first run converts the model (minutes); later runs read the cache.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `fixtures` is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from fixtures import keras_models  # noqa: E402

keras_models.load_triton_first()  # before tensorflow (see fixtures/keras_models.py)
pytest.importorskip("tensorflow", reason="tensorflow is not installed (pip install -e .[keras])")
pytest.importorskip("tf2onnx", reason="tf2onnx is not installed (pip install -e .[keras])")

import aeq_onnx  # noqa: E402
from aeq_onnx.errors import UnsupportedOpError  # noqa: E402
from fixtures import keras_convnext  # noqa: E402

BATCH = 2
SIZE = keras_convnext.SIZE
LOGIT_ATOL = 1e-4  # of logits of magnitude ~1-10, float32 through 18 blocks
PROB_ATOL = 1e-5
BATCH_TOLERANCE = 1e-4  # of max |R|


#: What the token rules do not cover yet in this graph (issue 21): Keras'
#: LayerNormalization as tf2onnx writes it (``moments`` + the batch-norm-style affine
#: ``x·(γ·rsqrt(var+ε)) + (β − mean·γ·rsqrt(var+ε))``: Neg, Sub of two tensors, Sqrt,
#: Reciprocal, Mul of two tensors) and Keras 3's exact GELU ``0.5·x·erfc(−x/√2)`` (Erf under a
#: ``1 − Erf`` Sub; the Erf nodes the conversion adds are unscoped, and Erf occurs in GELU
#: only). A compile refused for these nodes only is the known gap (xfail); a refusal naming
#: any other node fails.
KNOWN_GAP = ("layernorm", "gelu")
KNOWN_GAP_REASON = ("no rule yet (issue 21) for Keras' decomposed LayerNorm (TF moments + "
                    "batch-norm-style affine: Neg, Sub, Sqrt, Reciprocal, Mul of two tensors) "
                    "nor Keras 3's erfc GELU (Erf under 1 - Erf)")


@dataclass
class Case:
    """One converted model, its batch, what Keras says; the explainer and its result, or why
    it did not compile."""

    opset: int
    path: Path
    batch: np.ndarray
    keras: dict[str, np.ndarray]
    explainer: aeq_onnx.Explainer | None = None
    result: aeq_onnx.Explanation | None = None
    refused: UnsupportedOpError | None = None


@pytest.fixture(scope="module", params=keras_convnext.OPSETS, ids=lambda o: f"opset{o}")
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """Convert (cached), compile and explain once for all the tests of this module."""
    path = keras_convnext.export(request.param)
    batch = np.random.default_rng(0).uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
    found = Case(request.param, path, batch, keras_convnext.keras_outputs(batch))
    try:
        found.explainer = aeq_onnx.Explainer(path, device="cpu", threads=2)
    except UnsupportedOpError as exc:
        found.refused = exc
    else:
        found.result = found.explainer.explain(batch)
    yield found


def explained(case: Case) -> tuple[aeq_onnx.Explainer, aeq_onnx.Explanation]:
    """The explainer and its result; xfail when the compile was refused for the known gap
    only (every refused node in a LayerNorm or GELU scope), the refusal itself otherwise."""
    if case.refused is not None:
        names = [name for _, name, _ in case.refused.nodes]
        outside = [name for op, name, _ in case.refused.nodes if op != "Erf"  # GELU's only
                   and not any(k in name.split(":")[0] for k in KNOWN_GAP)]
        if outside:
            raise case.refused
        pytest.xfail(f"{KNOWN_GAP_REASON}: {len(names)} nodes refused")
    assert case.explainer is not None and case.result is not None
    return case.explainer, case.result


def test_onnx_model_matches_keras(case: Case) -> None:
    """The conversion (with its two workarounds) computes Keras' function: the plain ONNX
    model's probabilities equal Keras'."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(case.path), providers=["CPUExecutionProvider"])
    probs = session.run(None, {session.get_inputs()[0].name: case.batch})[0]
    np.testing.assert_allclose(probs, case.keras["probs"], rtol=0, atol=PROB_ATOL)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_logits_match_keras(case: Case) -> None:
    _, result = explained(case)
    np.testing.assert_allclose(result.logits, case.keras["logits"], rtol=0,
                               atol=LOGIT_ATOL)
    np.testing.assert_allclose(softmax(result.logits), case.keras["probs"], rtol=0,
                               atol=PROB_ATOL)
    np.testing.assert_array_equal(result.target, case.keras["probs"].argmax(axis=1))


def test_relevance_is_nhwc_finite_and_nontrivial(case: Case) -> None:
    _, result = explained(case)
    relevance = result.relevance
    assert relevance.shape == case.batch.shape == (BATCH, SIZE, SIZE, 3)
    assert relevance.dtype == np.float32
    assert np.isfinite(relevance).all()
    assert np.isfinite(result.initial_relevance).all()
    for sample in relevance:
        assert np.abs(sample).max() > 0


def test_batch_equals_per_sample(case: Case) -> None:
    explainer, result = explained(case)
    scale = float(np.abs(result.relevance).max())
    for i in range(BATCH):
        alone = explainer.explain(case.batch[i:i + 1])
        np.testing.assert_allclose(alone.logits[0], result.logits[i], rtol=0,
                                   atol=LOGIT_ATOL)
        np.testing.assert_allclose(alone.relevance[0], result.relevance[i], rtol=0,
                                   atol=BATCH_TOLERANCE * scale)


def test_metadata_names_the_token_rules(case: Case) -> None:
    """A LayerNorm CNN is a token model: the explainer says what ran on its token layers."""
    explainer, _ = explained(case)
    assert "token_rules" in explainer.metadata, sorted(explainer.metadata)
