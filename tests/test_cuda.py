"""The CUDA path: explainers run on onnxruntime's CUDAExecutionProvider give the CPU's answer.

Skipped, with the reason in the test summary (``-ra``), where onnxruntime has no usable GPU;
nothing else in the suite needs one. On a GPU machine: relevance and logits within 1e-4 of
max (cuDNN picks its own convolution algorithms, so bit equality is not expected), the same
target classes, and the session really on CUDA.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aeq_onnx.runtime import CUDA, Explainer, cuda_usable

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"vgg-scenes": ROOT / "fixtures/scenes/vgg_scenes.onnx",
          "resnet-scenes": ROOT / "fixtures/scenes/resnet_scenes.onnx"}

pytestmark = pytest.mark.skipif(
    not cuda_usable(),
    reason="no usable GPU for onnxruntime (CUDAExecutionProvider missing or no device): "
           "the CUDA path is not exercised on this machine")


def _close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    err = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-30))
    assert err <= 1e-4, f"{what}: CUDA differs from CPU by {err:.2e} of max"


@pytest.mark.parametrize("method", ["ae", "lrp-epsilon", "integrated-gradients"])
@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_matches_cpu(name: str, method: str) -> None:
    cpu = Explainer(MODELS[name], method=method, device="cpu")
    gpu = Explainer(cpu.model, device="cuda")
    assert gpu.provider == CUDA
    size = int(cpu.session.get_inputs()[0].shape[2])
    x = np.random.default_rng(0).random((2, 3, size, size), dtype=np.float32)
    want, got = cpu.explain(x), gpu.explain(x)
    np.testing.assert_array_equal(got.target, want.target)
    _close(got.logits, want.logits, "logits")
    _close(got.relevance, want.relevance, "relevance")
