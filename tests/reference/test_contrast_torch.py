"""Checks of the contrastive AE reference (``contrast_torch.py``) against independent
computations: closed-form seeds against autograd, ``logit`` against ``ae_torch``, ``versus`` as
the difference of two logit initial maps, ``dual`` against two separate ``ae_torch`` runs (the
dual objective as an extra "virtual class" row of the classifier, Gu et al. 2018), and the
properties the explainer must keep (batch = per sample, finite values, logits unchanged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from tests.reference import ae_torch
from tests.reference import contrast_torch as ct

ROOT = Path(__file__).resolve().parents[2]
RESNET = ROOT / "fixtures" / "scenes" / "resnet_scenes.onnx"
TOL = 1e-4


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return onnx.load(str(RESNET))


@pytest.fixture(scope="module")
def scenes() -> np.ndarray:
    from fixtures.scenes.generator import make_scenes

    images = np.stack([s.image for s in make_scenes(2, 1234)]).astype(np.float32)
    return np.ascontiguousarray(((images / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2))


def _close(a: np.ndarray, b: np.ndarray, tol: float = TOL) -> None:
    scale = max(float(np.abs(b).max()), 1e-30)
    assert float(np.abs(a - b).max()) <= tol * scale


@pytest.mark.parametrize("variant", ct.SEED_VARIANTS)
def test_seed_is_the_gradient_of_the_objective(variant: str) -> None:
    rng = np.random.default_rng(0)
    logits = np.concatenate([rng.normal(0, 3, (4, 7)), [[40.0, -40.0, 0, 0, 1, 2, 3]]])
    t = np.array([0, 3, 6, 2, 0])
    y = torch.tensor(logits, requires_grad=True)
    (grad,) = torch.autograd.grad(ct.objective(variant, y, torch.tensor(t)).sum(), y)
    np.testing.assert_allclose(ct.seed(variant, logits, t), grad.numpy(), atol=1e-12)


def test_softmax_seed_is_a_positive_multiple_of_the_margin_seed() -> None:
    """SGLRP's seed p_t (e_t - p) = p_t (1 - p_t) (e_t - q): AE's scale-free R0 is the same."""
    logits = np.random.default_rng(1).normal(0, 2, (5, 6))
    t = np.arange(5)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scale = (p[t, t] * (1 - p[t, t]))[:, None]
    np.testing.assert_allclose(ct.seed("softmax", logits, t), scale * ct.seed("margin", logits, t),
                               atol=1e-12)


def test_logit_variant_is_ae(model: onnx.ModelProto, scenes: np.ndarray) -> None:
    ours = ct.reference_contrast(model, scenes, "logit")
    ref = ae_torch.reference_explain(model, scenes)
    np.testing.assert_array_equal(ours["R"], ref["R"])
    np.testing.assert_array_equal(ours["logits"], ref["logits"])


def test_softmax_map_equals_margin_map(model: onnx.ModelProto, scenes: np.ndarray) -> None:
    soft = ct.reference_contrast(model, scenes, "softmax")
    margin = ct.reference_contrast(model, scenes, "margin")
    for i in range(len(scenes)):
        _close(soft["R0"][i], margin["R0"][i], 1e-6)
        _close(soft["R"][i], margin["R"][i], 1e-6)


def test_versus_initial_map_is_the_difference_of_two_logit_maps(
        model: onnx.ModelProto, scenes: np.ndarray) -> None:
    graph = ae_torch.Graph(model)
    x = torch.from_numpy(scenes).double().requires_grad_(True)
    env = ae_torch.run_forward(graph, x)
    split, name = ae_torch.find_split(graph, env), ae_torch.logits_name(graph)
    t = env[name].argmax(1)
    k = ct.runner_up(env[name], t)
    A = env[split].detach()

    def raw(cls: torch.Tensor) -> torch.Tensor:  # A · mean_hw(∂y_cls/∂A), not normalised
        g = ct.split_gradient(env, split, name, lambda y: y[torch.arange(len(cls)), cls])
        return A * g.mean(dim=(2, 3), keepdim=True)

    diff = raw(t) - raw(k)
    expected = diff / diff.sum(dim=(1, 2, 3), keepdim=True).abs()
    versus = ct.reference_contrast(model, scenes, "versus")
    np.testing.assert_array_equal(versus["versus"], k.numpy())
    for i in range(len(scenes)):
        _close(versus["R0"][i], expected[i].numpy())


def _with_dual_class(model: onnx.ModelProto, t: int) -> onnx.ModelProto:
    """The model with a 7th logit Σ_{n≠t} y_n: CLRP's dual virtual class as a classifier row."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name: i for i in out.graph.initializer}
    w, b = numpy_helper.to_array(inits["fc.weight"]), numpy_helper.to_array(inits["fc.bias"])
    others = np.arange(len(w)) != t
    inits["fc.weight"].CopyFrom(numpy_helper.from_array(
        np.vstack([w, w[others].sum(0, keepdims=True)]), "fc.weight"))
    inits["fc.bias"].CopyFrom(numpy_helper.from_array(np.append(b, b[others].sum()), "fc.bias"))
    return out


def test_dual_against_two_separate_ae_runs(model: onnx.ModelProto, scenes: np.ndarray) -> None:
    for i in range(len(scenes)):
        x = scenes[i:i + 1]
        dual = ct.reference_contrast(model, x, "dual")
        t = int(dual["target"][0])
        r_t = ae_torch.reference_explain(model, x, target=t)["R"][0]
        r_d = ae_torch.reference_explain(_with_dual_class(model, t), x, target=6)["R"][0]
        _close(dual["R_target"][0], r_t)
        _close(dual["R_dual"][0], r_d)
        rho = np.maximum(r_t, 0).sum() / np.maximum(r_d, 0).sum()
        _close(dual["R"][0], np.maximum(r_t - rho * r_d, 0), TOL)


@pytest.mark.parametrize("variant", ct.VARIANTS)
def test_batch_equals_per_sample_and_finite(model: onnx.ModelProto, scenes: np.ndarray,
                                            variant: str) -> None:
    blank = np.zeros_like(scenes[:1])  # a degenerate sample: constant input
    batch = np.concatenate([scenes, blank])
    single = ct.reference_contrast(model, batch, variant)  # one sample at a time
    together = ct.explain_batch(ae_torch.Graph(model), torch.from_numpy(batch).double(),
                                variant, None, None, 2.0, None)
    for key in ("R", "R0", "logits"):
        got = together[key].numpy()  # type: ignore[attr-defined]
        assert np.isfinite(got).all()
        for i in range(len(batch)):
            _close(got[i], single[key][i], 1e-5)
    import onnxruntime as ort

    session = ort.InferenceSession(str(RESNET), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": batch})[0]
    np.testing.assert_allclose(single["logits"], logits, rtol=1e-4, atol=1e-4)
