"""Keras ``ConvNeXtTiny(weights=None)`` through tf2onnx compiles and explains (issue 21, item 5).

The seeded model of ``fixtures/keras_convnext.py`` (64 px NHWC input, pixels in [0, 255],
LayerNorm decomposed by tf2onnx, exact GELU through Erf, grouped 7x7 convs, layer scale,
residual Adds, softmax fused into the head Dense), converted at opsets 13 and 17 and cached in
``fixtures/.cache/``. For a seeded batch of 2 images: the explainer's logits equal Keras'
(its head LayerNorm output times the head kernel plus bias) and their softmax Keras'
probabilities; the relevance keeps the NHWC layout, is finite and non-trivial for every image;
explaining each image alone gives the batch's relevance (batch = per-sample). The explainer's
metadata names the token rules it ran.

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
from fixtures import keras_convnext  # noqa: E402

BATCH = 2
SIZE = keras_convnext.SIZE
LOGIT_ATOL = 1e-4  # of logits of magnitude ~1-10, float32 through 18 blocks
PROB_ATOL = 1e-5
BATCH_TOLERANCE = 1e-4  # of max |R|


@dataclass
class Case:
    """One compiled explainer, its batch, what Keras says and what the explainer gave."""

    opset: int
    explainer: aeq_onnx.Explainer
    batch: np.ndarray
    keras: dict[str, np.ndarray]
    result: aeq_onnx.Explanation


@pytest.fixture(scope="module", params=keras_convnext.OPSETS, ids=lambda o: f"opset{o}")
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """Convert (cached), compile and explain once for all the tests of this module."""
    path = keras_convnext.export(request.param)
    explainer = aeq_onnx.Explainer(path, device="cpu", threads=2)
    batch = np.random.default_rng(0).uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
    yield Case(request.param, explainer, batch, keras_convnext.keras_outputs(batch),
               explainer.explain(batch))


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_logits_match_keras(case: Case) -> None:
    np.testing.assert_allclose(case.result.logits, case.keras["logits"], rtol=0,
                               atol=LOGIT_ATOL)
    np.testing.assert_allclose(softmax(case.result.logits), case.keras["probs"], rtol=0,
                               atol=PROB_ATOL)
    np.testing.assert_array_equal(case.result.target, case.keras["probs"].argmax(axis=1))


def test_relevance_is_nhwc_finite_and_nontrivial(case: Case) -> None:
    relevance = case.result.relevance
    assert relevance.shape == case.batch.shape == (BATCH, SIZE, SIZE, 3)
    assert relevance.dtype == np.float32
    assert np.isfinite(relevance).all()
    assert np.isfinite(case.result.initial_relevance).all()
    for sample in relevance:
        assert np.abs(sample).max() > 0


def test_batch_equals_per_sample(case: Case) -> None:
    scale = float(np.abs(case.result.relevance).max())
    for i in range(BATCH):
        alone = case.explainer.explain(case.batch[i:i + 1])
        np.testing.assert_allclose(alone.logits[0], case.result.logits[i], rtol=0,
                                   atol=LOGIT_ATOL)
        np.testing.assert_allclose(alone.relevance[0], case.result.relevance[i], rtol=0,
                                   atol=BATCH_TOLERANCE * scale)


def test_metadata_names_the_token_rules(case: Case) -> None:
    """A LayerNorm CNN is a token model: the explainer says what ran on its token layers."""
    assert "token_rules" in case.explainer.metadata, sorted(case.explainer.metadata)
