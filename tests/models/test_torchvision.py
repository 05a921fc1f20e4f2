"""Full-size torchvision classifiers (seeded random weights) compile and explain on CPU.

For every model x exporter: compile once (module-scoped fixture), explain a seeded batch of 3
images, compare the logits with torch's, and check that the relevance is usable and that a
batch gives the same relevance as single images. Models are exported and cached by
``fixtures/torchvision_models.py`` (``python -m fixtures.torchvision_models vgg16 resnet50``).
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

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `fixtures` is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

import aeq_onnx  # noqa: E402
from fixtures import torchvision_models  # noqa: E402
from tests.models import common  # noqa: E402

pytestmark = pytest.mark.slow
RecordProperty = Callable[[str, object], None]

BATCH = 3
SIZE = 224
LOGIT_RTOL = LOGIT_ATOL = 1e-4  # measured: max |Δ| ≤ 3.9e-5 (ResNet-50, |logits| ≤ 112)
BATCH_TOLERANCE = 1e-5  # of max |R|
REFERENCE_TOL = 1e-4  # of max |R_ref| per image
CASES = [
    pytest.param((name, exporter), id=f"{name}-{exporter}")
    for name in ("vgg16", "resnet50")
    for exporter in ("torchscript", "dynamo")
]


@dataclass
class Case:
    """One compiled explainer, the batch it explained and what torch says about that batch."""

    name: str
    explainer: aeq_onnx.Explainer
    batch: np.ndarray
    torch_logits: np.ndarray
    result: aeq_onnx.Explanation
    compile_s: float
    path: Path
    coverage: tuple[str, str, int]




def torch_logits(name: str, batch: np.ndarray) -> np.ndarray:
    return common.torch_logits(torchvision_models.build, name, batch)


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """Export (cached), compile and run one model once for all the tests of this module."""
    name, exporter = request.param
    path = torchvision_models.export(name, exporter, size=SIZE)
    start = time.perf_counter()
    proto = aeq_onnx.compile_explainer(path)
    compile_s = time.perf_counter() - start
    nodes = len(proto.graph.node)
    explainer = aeq_onnx.Explainer(proto, device="cpu", threads=2)
    del proto
    batch = np.random.default_rng(0).standard_normal((BATCH, 3, SIZE, SIZE)).astype(np.float32)
    reference = torch_logits(name, batch)
    result = explainer.explain(batch)
    error = float(np.abs(result.logits - reference).max())
    common.report(request, f"\n[{name}-{exporter}] compile_explainer {compile_s:.1f} s "
                    f"({path.name} -> {nodes} nodes); logits max |Δ| vs torch {error:.2e} "
                    f"(max |logit| {np.abs(reference).max():.3g})")
    yield Case(f"{name}-{exporter}", explainer, batch, reference, result, compile_s, path,
               (name, exporter, torchvision_models.DEFAULT_OPSET[exporter]))


def test_logits_match_torch(case: Case, record_property: RecordProperty) -> None:
    record_property("coverage", case.coverage)  # docs/coverage-tests.md table
    np.testing.assert_allclose(case.result.logits, case.torch_logits,
                               rtol=LOGIT_RTOL, atol=LOGIT_ATOL)
    np.testing.assert_array_equal(case.result.target, case.result.logits.argmax(axis=1))


def test_relevance_is_usable(case: Case, record_property: RecordProperty) -> None:
    record_property("coverage", case.coverage)
    relevance = case.result.relevance
    assert relevance.shape == case.batch.shape
    assert np.isfinite(relevance).all()
    assert np.isfinite(case.result.initial_relevance).all()
    for sample in relevance:  # every image gets a non-trivial map
        assert np.abs(sample).max() > 0


def test_batch_equals_single_images(case: Case) -> None:
    whole = case.result.relevance
    for i in range(BATCH):
        single = case.explainer.explain(case.batch[i : i + 1])
        np.testing.assert_array_equal(single.target, case.result.target[i : i + 1])
        scale = float(np.abs(whole[i]).max())
        np.testing.assert_allclose(single.relevance[0], whole[i], rtol=0,
                                   atol=BATCH_TOLERANCE * scale)


@pytest.mark.parametrize("name", ["vgg16", "resnet50"])
def test_exporters_agree(name: str) -> None:
    """The same torch model through both exporters (different op patterns, e.g. ResNet-50's
    GlobalAveragePool+Flatten vs ReduceMean+Reshape) gives the same relevance."""
    image = np.random.default_rng(1).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    maps = [aeq_onnx.Explainer(torchvision_models.export(name, exporter, size=SIZE),
                               device="cpu", threads=2).explain(image, target=7).relevance
            for exporter in ("torchscript", "dynamo")]
    scale = float(np.abs(maps[0]).max())
    np.testing.assert_allclose(maps[1], maps[0], rtol=0, atol=1e-4 * scale)


# Relevance tolerance per architecture where float32 cannot reach REFERENCE_TOL. VGG-16, image
# 0: one 2x2 max-pool window (features.23, channel 179) holds a near-tie (relative gap 3.5e-8,
# below float32 resolution), float32 picks the other winner and the relevance takes another
# path: the reference run in float32 is 1.915e-3 off its float64 run, the explainer 1.916e-3,
# and the explainer's graph evaluated in float64 matches the float64 reference to 1e-15.
REFERENCE_TOL_BY_ARCH = {"vgg16": 5e-3}


def test_relevance_matches_reference(case: Case, record_property: RecordProperty) -> None:
    """The first two images against the independent torch reference (float64), 1e-4 of max |R|
    (``REFERENCE_TOL_BY_ARCH`` where float32 conditioning forbids it)."""
    from tests.reference import ae_torch

    record_property("coverage", case.coverage)
    tolerance = REFERENCE_TOL_BY_ARCH.get(case.coverage[0], REFERENCE_TOL)
    ref = ae_torch.reference_explain(onnx.load(str(case.path)), case.batch[:2])
    np.testing.assert_array_equal(ref["target"], case.result.target[:2])
    for i in range(2):
        scale = float(np.abs(ref["R"][i]).max())
        error = float(np.abs(case.result.relevance[i] - ref["R"][i]).max()) / scale
        assert error <= tolerance, f"image {i}: {error:.2e} of max |R|"
    common.assert_coverage_doc_agrees(case.coverage)
