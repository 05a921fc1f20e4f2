"""Whole torchvision token models (seeded random weights) compile and explain on CPU (issue 21):
ViT-B/16 (built for 32 px: 4 patches and the class token), Swin-T, Swin-V2-T and ConvNeXt-T at
64 px, with the TorchScript exporter at opsets 17 and 20 and the dynamo exporter. For each:
the explainer's logits equal torch's, the relevance is finite and not all zero, a batch gives
each sample's relevance, and the metadata names what runs on the token layers. MaxViT-T is
refused with the typed error (its attention is written with Einsum)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `fixtures` is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

import aeq_onnx  # noqa: E402
from aeq_onnx.errors import UnsupportedOpError  # noqa: E402
from fixtures import torchvision_models  # noqa: E402
from tests.models import common  # noqa: E402

pytestmark = pytest.mark.slow
LOGIT_TOL = 1e-4
CASES = [
    *[pytest.param(name, "torchscript", 17, id=f"{name}-torchscript17")
      for name in ("vit_b_16_32", "swin_t", "swin_v2_t", "convnext_tiny")],
    *[pytest.param(name, "torchscript", 20, id=f"{name}-torchscript20")
      for name in ("vit_b_16_32", "swin_t", "convnext_tiny")],
    *[pytest.param(name, "dynamo", 18, id=f"{name}-dynamo")
      for name in ("vit_b_16_32", "swin_t", "convnext_tiny")],
]


@pytest.mark.parametrize(("name", "exporter", "opset"), CASES)
def test_token_model_explains(name: str, exporter: str, opset: int) -> None:
    path = torchvision_models.export(name, exporter, opset)
    proto = aeq_onnx.compile_explainer(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["aeq_onnx.token_rules"].startswith(
        "AE on convolutions, conservative propagation on token layers")
    explainer = aeq_onnx.Explainer(proto, device="cpu", threads=2)
    size = torchvision_models.MODELS[name].size
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    result = explainer.explain(x)
    want = common.torch_logits(torchvision_models.build, name, x)
    np.testing.assert_allclose(result.logits, want, rtol=LOGIT_TOL, atol=LOGIT_TOL)
    relevance = np.asarray(result.relevance, np.float64)
    assert np.isfinite(relevance).all() and (np.abs(relevance).max(axis=(1, 2, 3)) > 0).all()
    alone = np.asarray(explainer.explain(x[1:2]).relevance, np.float64)[0]
    assert np.abs(alone - relevance[1]).max() <= 1e-5 * np.abs(relevance[1]).max()


def test_maxvit_is_refused_with_every_einsum_listed() -> None:
    """MaxViT-T writes its relative attention with torch.einsum: the Einsums that relevance
    crosses have no rule, and after them the layout tracking no longer knows the sample axis,
    so the per-sample reductions downstream are listed too — one typed error, nothing
    emitted."""
    path = torchvision_models.export("maxvit_t", "torchscript", 17)
    with pytest.raises(UnsupportedOpError) as info:
        aeq_onnx.compile_explainer(path)
    message = str(info.value)
    assert message.count("Einsum (node") == 22
    assert "where its sample axis lies is unknown" in message
