"""The CUDA path: explainers run on onnxruntime's CUDAExecutionProvider give the CPU's answer.

Skipped, with the reason in the test summary (``-ra``), where onnxruntime has no usable GPU;
nothing else in the suite needs one. On a GPU machine: relevance and logits within 1e-4 of
max (cuDNN picks its own convolution algorithms, so bit equality is not expected), the same
target classes, and the session really on CUDA. Integrated gradients gets 1e-2 for its maps:
its gradients are piecewise constant in the input (ReLU masks, max-pool winners at each of its
interpolation steps), so rounding-level differences flip units. On the CPU a 1e-7 relative
perturbation of the input moves the resnet-scenes IG map by 5.4e-4 of max and a 1e-6 one moves
the vgg-scenes map by 3.9e-3, against <= 5e-6 for AE (``test_properties``); an H100 gave
5.4e-4 for resnet-scenes IG (2026-11-27).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from aeq_onnx.errors import InputError
from aeq_onnx.run.runtime import CUDA, Explainer, cuda_usable

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"vgg-scenes": ROOT / "fixtures/scenes/vgg_scenes.onnx",
          "resnet-scenes": ROOT / "fixtures/scenes/resnet_scenes.onnx"}

pytestmark = pytest.mark.skipif(
    not cuda_usable(),
    reason="no usable GPU for onnxruntime (CUDAExecutionProvider missing or no device): "
           "the CUDA path is not exercised on this machine")


IG_TOLERANCE = 1e-2


def _close(got: np.ndarray, want: np.ndarray, what: str, tolerance: float = 1e-4) -> None:
    err = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-30))
    assert err <= tolerance, f"{what}: CUDA differs from CPU by {err:.2e} of max"


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
    tolerance = IG_TOLERANCE if method == "integrated-gradients" else 1e-4
    _close(got.relevance, want.relevance, "relevance", tolerance)


@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_io_binding(name: str) -> None:
    """IO binding is the CUDA default; it matches the unbound run and keeps outputs on the GPU."""
    bound = Explainer(MODELS[name], device="cuda")
    plain = Explainer(bound.model, device="cuda", io_binding=False)
    assert bound.io_binding and not plain.io_binding
    size = int(bound.session.get_inputs()[0].shape[2])
    x = np.random.default_rng(1).random((2, 3, size, size), dtype=np.float32)
    want, got = plain.explain(x), bound.explain(x)
    np.testing.assert_array_equal(got.target, want.target)
    _close(got.relevance, want.relevance, "relevance (bound vs unbound)")
    on_gpu = bound.explain_on_device(ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
    assert on_gpu["relevance"].device_name() == "cuda"
    _close(on_gpu["relevance"].numpy(), want.relevance, "relevance (explain_on_device)")


@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_fp16_explainer(name: str) -> None:
    """The fp16 AE explainer on CUDA: finite, same classes, maps close to fp32 on CPU (the
    CPU estimate in benchmarks/results/FP16.md: worst 3.5e-2 of max, Pearson >= 0.9999)."""
    cpu = Explainer(MODELS[name], device="cpu")
    half = Explainer(cpu.model, device="cuda", precision="fp16")
    assert half.provider == CUDA and half.metadata["precision"] == "fp16"
    size = int(cpu.session.get_inputs()[0].shape[2])
    x = np.random.default_rng(2).random((4, 3, size, size), dtype=np.float32)
    want, got = cpu.explain(x), half.explain(x)
    assert np.isfinite(got.relevance).all() and np.isfinite(got.logits).all()
    np.testing.assert_array_equal(got.target, want.target)
    err = float(np.abs(got.relevance - want.relevance).max() / np.abs(want.relevance).max())
    assert err <= 0.1, f"fp16 on CUDA differs from fp32 by {err:.2e} of max"
    corr = np.corrcoef(got.relevance.ravel(), want.relevance.ravel())[0, 1]
    assert corr >= 0.999, f"fp16 relevance correlation {corr:.5f}"


@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_graph_replays_each_batch(name: str) -> None:
    """cuda_graph=True: every call's batch and targets reach the replayed graph (a replay that
    kept the captured input would fail from the third call of a size on), batch sizes mixed,
    each call within 1e-4 of the CPU."""
    cpu = Explainer(MODELS[name], device="cpu")
    graph = Explainer(cpu.model, device="cuda", cuda_graph=True)
    assert graph.graphs is not None and graph.provider == CUDA
    size = int(cpu.session.get_inputs()[0].shape[2])
    rng = np.random.default_rng(3)
    for n, target in ((2, -1), (2, -1), (2, 1), (1, -1), (2, -1), (1, 0), (2, -1)):
        x = rng.random((n, 3, size, size), dtype=np.float32)
        want, got = cpu.explain(x, target), graph.explain(x, target)
        np.testing.assert_array_equal(got.target, want.target)
        _close(got.logits, want.logits, f"logits (cuda graph, batch {n})")
        _close(got.relevance, want.relevance, f"relevance (cuda graph, batch {n})")
    with pytest.raises(InputError, match="cuda_graph"):
        graph.explain_on_device(ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
