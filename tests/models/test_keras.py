"""Small Keras classifiers (seeded random weights, NHWC input, tf2onnx) compile and explain.

For every model x opset of ``fixtures/keras_models.py``: compile once (module-scoped fixture),
explain a seeded batch of 2 NHWC images with pixel values in [0, 255], and check that

- the logits (the input of the final Softmax) reproduce Keras' pre-softmax output, or their
  softmax Keras' probabilities where the softmax is fused into the last Dense;
- the relevance keeps the NHWC layout, is finite and equals the independent torch reference
  (``tests/reference/ae_torch.py``) on the same ONNX file, for the top-1 and a given class;
- Keras' ``Rescaling(1/255)`` in front of the first Conv keeps the bounded input rule (4.3).

``zeropad`` (Keras' ZeroPadding2D -> tf2onnx ``Pad`` before a Conv) keeps its Pad: the spec
counts the padded zeros in the Conv's inactive set ``ā = 1[X <= 0]`` (rules 4.1/4.2) and crops
at the Pad (4.9), so aeq_onnx does not fold it; the same model with the Pad folded by hand into
the Conv is checked separately.

Needs the ``keras`` extra (``tensorflow-cpu``, ``tf2onnx``); skipped, with the reason shown by
``-ra``, when they are not installed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `fixtures` is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from fixtures import keras_models  # noqa: E402

# before tensorflow: with tensorflow loaded first, a later `import triton` (torch._dynamo, used
# by other tests in this process) segfaults
keras_models.load_triton_first()
pytest.importorskip("tensorflow", reason="tensorflow is not installed (pip install -e .[keras])")
pytest.importorskip("tf2onnx", reason="tf2onnx is not installed (pip install -e .[keras])")

import aeq_onnx  # noqa: E402
from aeq_onnx.compile.inspection import inspect_model  # noqa: E402
from tests.models import common  # noqa: E402
from tests.reference.ae_torch import reference_explain  # noqa: E402

BATCH = 2
SIZE = keras_models.SIZE
PROB_ATOL = 1e-5
LOGIT_ATOL = 1e-5  # measured: max |Δ| ≤ 6e-8 (|logits| ≤ 0.84)
REFERENCE_TOLERANCE = 1e-4  # of max |R|; measured ≤ 5e-7
BATCH_TOLERANCE = 1e-5  # of max |R|
BOUNDED_RULE = "AE bounded z^B input rule (4.3)"
CASES = [
    pytest.param((name, opset), id=f"{name}-tf2onnx-opset{opset}")
    for name in keras_models.MODELS
    for opset in keras_models.OPSETS
]



@dataclass
class Case:
    """One compiled explainer, the batch it explained, what Keras and the reference say."""

    name: str
    path: Path
    model: onnx.ModelProto
    explainer: aeq_onnx.Explainer
    batch: np.ndarray
    keras: dict[str, np.ndarray]
    result: aeq_onnx.Explanation
    reference: dict




def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|."""
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """Convert (cached), compile and run one model once for all the tests of this module."""
    name, opset = request.param
    path = keras_models.export(name, opset)
    model = onnx.load(str(path))
    start = time.perf_counter()
    explainer = aeq_onnx.Explainer(path, device="cpu", threads=2)
    compile_s = time.perf_counter() - start
    batch = np.random.default_rng(0).uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
    result = explainer.explain(batch)
    keras_out = keras_models.keras_outputs(name, batch)
    reference = reference_explain(model, batch)
    common.report(request, f"\n[{name}-opset{opset}] ops {' '.join(keras_models.op_types(path))}; "
                    f"Explainer {compile_s:.2f} s; softmax(logits) max |Δ| vs Keras "
                    f"{np.abs(softmax(result.logits) - keras_out['probs']).max():.1e}; "
                    f"relevance Δ / max |R| vs reference "
                    f"{relative(result.relevance, reference['R']):.1e}")
    yield Case(f"{name}-opset{opset}", path, model, explainer, batch, keras_out, result,
               reference)


def test_logits_match_keras(case: Case) -> None:
    if "logits" in case.keras:  # a separate Softmax layer: Keras has the pre-softmax tensor
        np.testing.assert_allclose(case.result.logits, case.keras["logits"], rtol=0,
                                   atol=LOGIT_ATOL)
    np.testing.assert_allclose(softmax(case.result.logits), case.keras["probs"], rtol=0,
                               atol=PROB_ATOL)
    np.testing.assert_array_equal(case.result.target, case.result.logits.argmax(axis=1))
    np.testing.assert_array_equal(case.result.target, case.keras["probs"].argmax(axis=1))


def test_relevance_is_nhwc_and_finite(case: Case) -> None:
    relevance = case.result.relevance
    assert relevance.shape == case.batch.shape == (BATCH, SIZE, SIZE, 3)
    assert relevance.dtype == np.float32
    assert np.isfinite(relevance).all()
    assert np.isfinite(case.result.initial_relevance).all()
    for sample in relevance:  # every image gets a non-trivial map
        assert np.abs(sample).max() > 0


def fold_pads_by_hand(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every constant NCHW spatial Pad that feeds a Conv merged into
    that Conv's ``pads`` (what a fold-Pad pass would do; the pipeline keeps Pads: see
    docs/choices.md), written independently."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    pads = {n.output[0]: n for n in model.graph.node if n.op_type == "Pad"}
    folded = []
    for node in model.graph.node:
        if node.op_type != "Conv" or node.input[0] not in pads:
            continue
        pad = pads[node.input[0]]
        p = consts[pad.input[1]].tolist()  # [n, c, h, w] begins, then ends
        assert p[0] == p[1] == p[4] == p[5] == 0, p
        old = next((a for a in node.attribute if a.name == "pads"), None)
        base = list(old.ints) if old is not None else [0, 0, 0, 0]
        if old is not None:
            node.attribute.remove(old)
        node.attribute.append(helper.make_attribute(
            "pads", [base[0] + p[2], base[1] + p[3], base[2] + p[6], base[3] + p[7]]))
        node.input[0] = pad.input[0]
        folded.append(pad)
    assert folded, "no Pad before a Conv"
    for pad in folded:
        model.graph.node.remove(pad)
    return model


def test_relevance_matches_reference(case: Case,
                                     record_property: Callable[[str, object], None]) -> None:
    name, opset = case.name.rsplit("-opset", 1)
    record_property("coverage", (name, "tf2onnx", int(opset)))  # docs/coverage-tests.md table
    np.testing.assert_array_equal(case.result.target, case.reference["target"])
    np.testing.assert_allclose(case.result.logits, case.reference["logits"], rtol=0,
                               atol=LOGIT_ATOL)
    np.testing.assert_allclose(case.result.initial_relevance, case.reference["R0"], rtol=0,
                               atol=REFERENCE_TOLERANCE * np.abs(case.reference["R0"]).max())
    scale = float(np.abs(case.reference["R"]).max())
    np.testing.assert_allclose(case.result.relevance, case.reference["R"], rtol=0,
                               atol=REFERENCE_TOLERANCE * scale)


def test_given_target_matches_reference(case: Case) -> None:
    target = 3
    result = case.explainer.explain(case.batch, target=np.full(BATCH, target, dtype=np.int64))
    reference = reference_explain(case.model, case.batch, target=target)
    np.testing.assert_array_equal(result.target, [target] * BATCH)
    scale = float(np.abs(reference["R"]).max())
    np.testing.assert_allclose(result.relevance, reference["R"], rtol=0,
                               atol=REFERENCE_TOLERANCE * scale)


@pytest.mark.parametrize("opset", keras_models.OPSETS, ids=lambda o: f"opset{o}")
def test_zeropad_with_pad_folded_by_hand_matches_reference(opset: int) -> None:
    """With the Pad folded into the Conv by hand (Conv padding, no inactive padded zeros),
    aeq_onnx and the reference agree too."""
    path = keras_models.export("zeropad", opset)
    model = onnx.load(str(path))
    batch = np.random.default_rng(0).uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
    folded = fold_pads_by_hand(model)
    result = aeq_onnx.Explainer(folded, device="cpu", threads=2).explain(batch)
    reference = reference_explain(folded, batch)
    np.testing.assert_array_equal(result.target, reference["target"])
    scale = float(np.abs(reference["R"]).max())
    np.testing.assert_allclose(result.relevance, reference["R"], rtol=0,
                               atol=REFERENCE_TOLERANCE * scale)


def test_batch_equals_single_images(case: Case) -> None:
    whole = case.result.relevance
    for i in range(BATCH):
        single = case.explainer.explain(case.batch[i : i + 1])
        np.testing.assert_array_equal(single.target, case.result.target[i : i + 1])
        scale = float(np.abs(whole[i]).max())
        np.testing.assert_allclose(single.relevance[0], whole[i], rtol=0,
                                   atol=BATCH_TOLERANCE * scale)


def test_rescaling_gives_bounded_input_rule(case: Case) -> None:
    """tf2onnx writes Rescaling(1/255) as Mul + Add before the NHWC->NCHW Transpose; the first
    Conv still gets the bounded rule and is the only one that does."""
    nodes = inspect_model(case.path).nodes
    ops = [n.op for n in nodes]
    assert ops[:4] == ["Mul", "Add", "Transpose", "Conv"], ops
    convs = [n for n in nodes if n.op == "Conv"]
    assert convs[0].role == "relevance"
    assert convs[0].rule == BOUNDED_RULE
    assert all(n.rule != BOUNDED_RULE for n in convs[1:])
