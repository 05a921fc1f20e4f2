"""Baseline methods compiled by aeq_onnx vs independent torch references (Captum, Zennit, own
torch code in ``tests/reference/baselines_torch.py``), on small torch models exported to ONNX:
a residual CNN (Conv+BN+ReLU, MaxPool, Add, GAP, Linear), a plain chain (AvgPool, Flatten,
Linear) and, for LRP's dense input layer, an MLP. Batch of 2, explicit targets and top-1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import aeq_onnx
from tests.helpers import (
    Net,
    assert_rel_close,
    check_logits,
    explain,
    random_input,
    torch_single_thread,
)
from tests.reference import baselines_torch as bt


@dataclass(frozen=True)
class Case:
    """A seeded torch model, its ONNX export (written to disk) and a batch."""

    torch: torch.nn.Module
    onnx: onnx.ModelProto
    path: Path
    x: np.ndarray


SHAPES = {"rescnn": (3, 16, 16), "chain": (3, 12, 12), "mlp": (3, 4, 4)}
BUILDERS = {"rescnn": bt.ResCNN, "chain": bt.PlainChain, "mlp": bt.MLP}
TARGETS = [pytest.param([1, 3], id="target-1-3"), pytest.param(None, id="top1")]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Every model exported once for this module."""
    out = {}
    for seed, (name, build) in enumerate(BUILDERS.items()):
        model = bt.seeded(build(), seed)
        proto = bt.export(model, SHAPES[name])
        path = tmp_path_factory.mktemp("methods") / f"{name}.onnx"
        onnx.save(proto, path)
        x = np.random.default_rng(seed + 10).standard_normal((2, *SHAPES[name]))
        out[name] = Case(model, proto, path, x.astype(np.float32))
    return out


def run(case: Case, method: str, target: list[int] | None, **kw: object) -> dict[str, np.ndarray]:
    """Compile ``case`` (from its file) for ``method``, run it, check the logits."""
    explainer = aeq_onnx.compile_explainer(case.path, method=method, **kw)  # type: ignore[arg-type]
    out = explain(explainer, case.x, target)
    check_logits(case.onnx, case.x, out["logits"])
    assert out["relevance"].shape == case.x.shape
    want = bt.targets(case.torch, torch.from_numpy(case.x), target).numpy()
    np.testing.assert_array_equal(out["target_class"], want)
    return out


GRADIENT_CASES = [
    pytest.param("gradient", {}, id="gradient"),
    pytest.param("gradient-x-input", {}, id="gradient-x-input"),
    pytest.param("integrated-gradients", {"steps": 8}, id="ig-zero-8"),
    pytest.param("integrated-gradients", {}, id="ig-zero-default32"),
    pytest.param("integrated-gradients", {"steps": 6, "baseline": "blur", "blur_sigma": 1.5},
                 id="ig-blur-1.5px"),
    pytest.param("integrated-gradients", {"steps": 4, "baseline": "blur"},
                 id="ig-blur-default5px"),
]


@pytest.mark.parametrize("model", ["rescnn", "chain"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("method", "kw"), GRADIENT_CASES)
def test_gradient_family_matches_captum(cases: dict[str, Case], model: str, method: str,
                                        kw: dict, target: list[int] | None) -> None:
    """Saliency (abs=False), InputXGradient, IntegratedGradients (riemann_middle, same
    baseline and steps) within 1e-4 of max|reference|."""
    case = cases[model]
    out = run(case, method, target, **kw)
    with torch_single_thread():
        ref = bt.captum_attribution(case.torch, case.x, target, method,
                                    steps=kw.get("steps", 32), baseline=kw.get("baseline"),
                                    sigma=kw.get("blur_sigma", 5.0))
    assert_rel_close(out["relevance"], ref, what=f"{method} relevance")


def test_integrated_gradients_completeness(cases: dict[str, Case]) -> None:
    """Σ IG ≈ logit_t(x) - logit_t(0) (Sundararajan 2017's completeness, up to the Riemann
    error): guards the path and the (x - baseline) factor independently of Captum."""
    case = cases["chain"]
    out = run(case, "integrated-gradients", [1, 3], steps=64)
    zero = explain(aeq_onnx.compile_explainer(case.path, method="gradient"),
                   np.zeros_like(case.x), [1, 3])["logits"]
    gap = out["logits"][[0, 1], [1, 3]] - zero[[0, 1], [1, 3]]
    np.testing.assert_allclose(out["relevance"].sum(axis=(1, 2, 3)), gap, rtol=0.02, atol=1e-3)


GRADCAM_LAYERS = {"rescnn": "relu3", "chain": "relu2"}


@pytest.mark.parametrize("model", ["rescnn", "chain"])
@pytest.mark.parametrize("target", TARGETS)
def test_gradcam_matches_captum(cases: dict[str, Case], model: str,
                                target: list[int] | None) -> None:
    """LayerGradCam at the default split (ReLU before GAP / before the last AvgPool), bilinear
    upsampling as ``F.interpolate(align_corners=False)``; relevance = cam/C per channel."""
    case = cases[model]
    out = run(case, "gradcam", target, expose_gradient=True)
    layer = getattr(case.torch, GRADCAM_LAYERS[model])
    with torch_single_thread():
        cam, up = bt.captum_gradcam(case.torch, layer, case.x, target)
    channels = case.x.shape[1]
    assert_rel_close(out["initial_relevance"], cam, what="cam")
    assert_rel_close(out["relevance"], np.repeat(up / channels, channels, axis=1),
                     what="gradcam relevance")
    assert_rel_close(out["relevance"].sum(axis=1, keepdims=True), up, what="channel sum")


def test_gradcam_layer_override(cases: dict[str, Case]) -> None:
    """``layer=`` moves Grad-CAM to the MaxPool output (8x8)."""
    case = cases["rescnn"]
    layer = bt.output_of(case.onnx, "/pool/MaxPool")
    out = run(case, "gradcam", [0, 2], layer=layer)
    with torch_single_thread():
        cam, up = bt.captum_gradcam(case.torch, case.torch.pool, case.x, [0, 2])
    assert_rel_close(out["initial_relevance"], cam, what="cam at the pool")
    assert_rel_close(out["relevance"].sum(axis=1, keepdims=True), up, what="upsampled cam")


LRP_CASES = [
    pytest.param("lrp-epsilon", {}, id="epsilon-default"),
    pytest.param("lrp-epsilon", {"epsilon": 1e-3}, id="epsilon-1e-3"),
    pytest.param("lrp-zplus", {}, id="zplus"),
]


@pytest.mark.parametrize("model", ["rescnn", "chain", "mlp"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("method", "kw"), LRP_CASES)
def test_lrp_matches_zennit(cases: dict[str, Case], model: str, method: str, kw: dict,
                            target: list[int] | None) -> None:
    """Zennit: ZBox (sample min/max) at the first layer, Epsilon / ZPlus elsewhere, z-rule at
    the residual Sum and the pools; on the BN-folded torch model (as our converter folds)."""
    case = cases[model]
    out = run(case, method, target, **kw)
    eps = float(kw.get("epsilon", aeq_onnx.LRPEpsilon.epsilon.default))
    with torch_single_thread():
        ref = bt.zennit_lrp(case.torch, case.x, target, method[4:], eps)
    assert_rel_close(out["relevance"], ref, what=f"{method} relevance")
    picked = out["logits"][np.arange(2), out["target_class"]]
    np.testing.assert_allclose(out["initial_relevance"].sum(axis=1), picked, rtol=1e-6)


# ----------------------------------------------------------------------- contract


BASELINES = [m for m in aeq_onnx.methods.METHOD_NAMES if m != "ae"]


@pytest.mark.parametrize("method", BASELINES)
def test_metadata_records_the_method(cases: dict[str, Case], method: str) -> None:
    """``aeq_onnx.method`` and the method's parameters are in the metadata; ir_version set;
    the runtime Explainer runs the compiled model unchanged."""
    case = cases["rescnn"]
    explainer = aeq_onnx.compile_explainer(case.path, method=method, steps=4)
    meta = {p.key: p.value for p in explainer.metadata_props}
    assert meta["aeq_onnx.method"] == method
    assert explainer.ir_version >= 7
    expected = {"lrp-epsilon": "aeq_onnx.epsilon", "integrated-gradients": "aeq_onnx.steps"}
    if method in expected:
        assert expected[method] in meta
    result = aeq_onnx.Explainer(explainer, device="cpu", threads=1).explain(case.x, [1, 3])
    assert result.relevance.shape == case.x.shape


def _dead(model: torch.nn.Module, how: str) -> torch.nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if how == "all-zero" or name == "conv1.bias":
                p.fill_(0.0 if how == "all-zero" else -100.0)
    return model


@pytest.mark.parametrize("how", ["all-zero", "dead-first-relu"])
@pytest.mark.parametrize("method", list(aeq_onnx.methods.METHOD_NAMES))
def test_dead_network_is_finite(tmp_path: Path, method: str, how: str) -> None:
    """Zero weights, or a first ReLU that never fires: finite outputs for every method."""
    model = _dead(bt.seeded(bt.PlainChain(), 3), how)
    proto = bt.export(model, SHAPES["chain"])
    x = np.random.default_rng(0).standard_normal((2, *SHAPES["chain"])).astype(np.float32)
    out = explain(aeq_onnx.compile_explainer(proto, method=method, steps=4), x, [0, 1])
    for name, value in out.items():
        assert np.isfinite(value).all(), f"{name} of {method} is not finite"
    check_logits(proto, x, out["logits"])


def test_unknown_method_lists_the_valid_ones(cases: dict[str, Case]) -> None:
    with pytest.raises(aeq_onnx.errors.MethodError, match="integrated-gradients"):
        aeq_onnx.compile_explainer(cases["chain"].path, method="smoothgrad")


@pytest.mark.parametrize("kw", [
    pytest.param({"baseline": "noise"}, id="baseline"),
    pytest.param({"steps": 0}, id="steps"),
    pytest.param({"epsilon": -1.0}, id="epsilon"),
    pytest.param({"layer": "x", "method": "lrp-zplus"}, id="layer-for-lrp"),
    pytest.param({"expose_gradient": True, "method": "gradient"}, id="gradient-output"),
])
def test_bad_parameters_raise_typed_errors(cases: dict[str, Case], kw: dict) -> None:
    kw = {"method": "integrated-gradients", **kw}
    with pytest.raises(aeq_onnx.errors.MethodError):
        aeq_onnx.compile_explainer(cases["chain"].path, **kw)


class HardCodedBatch(torch.nn.Module):
    """Conv, ReLU, then ``view(2, -1)``: the batch size is baked into the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).view(2, -1))


@pytest.mark.parametrize("model", ["static-batch", "hard-coded-reshape"])
def test_integrated_gradients_needs_a_free_batch(cases: dict[str, Case], model: str) -> None:
    """A static batch axis, or a Reshape to a fixed batch: a typed error before emitting."""
    if model == "static-batch":
        proto = bt.export(cases["chain"].torch, SHAPES["chain"], dynamic=False)
    else:
        proto = bt.export(bt.seeded(HardCodedBatch(), 0), (3, 6, 6))
    with pytest.raises(aeq_onnx.errors.BatchTilingError, match="batch"):
        aeq_onnx.compile_explainer(proto, method="integrated-gradients")
    assert aeq_onnx.compile_explainer(proto, method="gradient") is not None


@pytest.mark.parametrize("method", ["lrp-epsilon", "lrp-zplus"])
def test_lrp_reads_gemm_alpha_and_beta(method: str) -> None:
    """Gemm(alpha=2, beta=0.5) gives the same LRP as Gemm(alpha=1, beta=1) with 2·W and 0.5·C
    (the torch exports above always have alpha = beta = 1)."""
    net = Net((3, 6, 6), seed=4)
    net.conv(4, 3, pads=1)
    net.relu()
    net.op("GlobalAveragePool", [net.cur])
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(3, alpha=2.0, beta=0.5, name="y")
    scaled = net.build(classes=3)
    plain = onnx.ModelProto()
    plain.CopyFrom(scaled)
    gemm = plain.graph.node[-1]
    gemm.ClearField("attribute")
    gemm.attribute.extend([onnx.helper.make_attribute("transB", 1)])
    for init in plain.graph.initializer:
        if init.name in (gemm.input[1], gemm.input[2]):
            factor = 2.0 if init.name == gemm.input[1] else 0.5
            init.CopyFrom(numpy_helper.from_array(factor * numpy_helper.to_array(init), init.name))
    x = random_input((3, 6, 6))
    got = explain(aeq_onnx.compile_explainer(scaled, method=method), x, [0, 2])
    want = explain(aeq_onnx.compile_explainer(plain, method=method), x, [0, 2])
    np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-5, atol=1e-6)
    assert_rel_close(got["relevance"], want["relevance"], what=f"{method} with alpha/beta")


def _tiny(layout: str) -> onnx.ModelProto:
    """Conv→ReLU→GAP→Flatten→Gemm on an NCHW input, or the same weights behind an NHWC input
    and a Transpose (a Keras-style model)."""
    if layout == "nchw":
        net = Net((3, 10, 10), seed=7)
    else:
        net = Net((10, 10, 3), seed=7)
        net.op("Transpose", [net.cur], perm=[0, 3, 1, 2])
    net.conv(4, 3, pads=1)
    net.relu()
    return net.head(classes=3)


@pytest.mark.parametrize(("method", "kw"), [
    pytest.param("integrated-gradients", {"steps": 4, "baseline": "blur", "blur_sigma": 1.0},
                 id="ig-blur"),
    pytest.param("gradcam", {}, id="gradcam"),
])
def test_nhwc_input_equals_nchw(method: str, kw: dict) -> None:
    """The blur baseline and Grad-CAM's channel spread follow an NHWC input's layout."""
    x = random_input((3, 10, 10))
    nchw = explain(aeq_onnx.compile_explainer(_tiny("nchw"), method=method, **kw), x, [0, 2])
    nhwc = explain(aeq_onnx.compile_explainer(_tiny("nhwc"), method=method, **kw),
                   np.ascontiguousarray(x.transpose(0, 2, 3, 1)), [0, 2])
    assert_rel_close(nhwc["relevance"].transpose(0, 3, 1, 2), nchw["relevance"],
                     what=f"{method} NHWC vs NCHW")
