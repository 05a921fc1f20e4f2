"""``contrast=`` / ``versus=`` (issue 23) in the compiled explainer, against independent
computations: the torch reference of the contrastive AE seeds (``tests/reference/
contrast_torch.py``: autograd of each objective, its own relevance walk), the difference of two
logit-seeded initial maps for ``versus``, two separately compiled propagations for ``dual``
(the dual class as a real classifier row), Zennit with the same seeds for the LRP baselines;
and the properties every explainer keeps (batch = per sample, finite, logits unchanged,
default explainers byte for byte as before the parameters existed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import aeq_onnx
from aeq_onnx.errors import MethodError
from aeq_onnx.methods import chains, contrast
from aeq_onnx.methods.ae import AE, initial_relevance
from aeq_onnx.methods.lrp import LRPZPlus
from aeq_onnx.rules.shared import lrp
from tests.helpers import assert_rel_close, check_logits, explain, torch_single_thread
from tests.reference import ae_torch
from tests.reference import baselines_torch as bt
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


def _explain(model: onnx.ModelProto, x: np.ndarray, target: list[int] | None = None,
             **kw: object) -> dict[str, np.ndarray]:
    explainer = aeq_onnx.compile_explainer(model, isolate=False, **kw)  # type: ignore[arg-type]
    out = explain(explainer, x, target)
    check_logits(model, x, out["logits"])
    assert all(np.isfinite(v).all() for v in out.values())
    return out


@pytest.mark.parametrize("variant", ct.VARIANTS)
def test_ae_contrast_matches_the_torch_reference(model: onnx.ModelProto, scenes: np.ndarray,
                                                 variant: str) -> None:
    out = _explain(model, scenes, contrast=variant)
    with torch_single_thread():
        ref = ct.reference_contrast(model, scenes, variant)
    np.testing.assert_array_equal(out["target_class"], ref["target"])
    for i in range(len(scenes)):
        assert_rel_close(out["relevance"][i], ref["R"][i], TOL, f"{variant} R, sample {i}")
        assert_rel_close(out["initial_relevance"][i], ref["R0"][i], TOL, f"{variant} R0")
    if variant == "dual":
        assert (out["relevance"] >= 0).all()


def test_versus_k_is_the_difference_of_two_logit_seeded_maps(model: onnx.ModelProto,
                                                             scenes: np.ndarray) -> None:
    """``versus=K``: the split gradient is g(t) - g(K) of two logit explainers, the initial map
    A · mean_hw(g(t) - g(K)) (the two unnormalised logit maps subtracted), normalised."""
    target, k = [1, 4], 3
    out = _explain(model, scenes, target, contrast="versus", versus=k, expose_gradient=True)
    g_t = _explain(model, scenes, target, expose_gradient=True)["split_gradient"]
    g_k = _explain(model, scenes, [k, k], expose_gradient=True)["split_gradient"]
    assert_rel_close(out["split_gradient"], g_t - g_k, TOL, "versus gradient")
    np.testing.assert_array_equal(out["versus_class"], [k, k])
    graph = ae_torch.Graph(model)
    env = ae_torch.run_forward(graph, torch.from_numpy(scenes).double())
    A = env[ae_torch.find_split(graph, env)].detach().numpy()

    def raw(g: np.ndarray) -> np.ndarray:  # the logit-seeded initial map, not normalised
        return A * g.astype(np.float64).mean(axis=(2, 3), keepdims=True)

    diff = raw(g_t) - raw(g_k)
    want = diff / np.abs(diff.sum(axis=(1, 2, 3), keepdims=True))
    assert_rel_close(out["initial_relevance"], want, TOL, "versus R0")
    with torch_single_thread():
        for i, t in enumerate(target):
            ref = ct.reference_contrast(model, scenes[i:i + 1], "versus", target=t, versus=k)
            assert_rel_close(out["relevance"][i], ref["R"][0], TOL, "versus R")


def test_versus_defaults_to_the_runner_up(model: onnx.ModelProto, scenes: np.ndarray) -> None:
    out = _explain(model, scenes, contrast="versus")
    second = np.argsort(out["logits"], axis=1)[:, -2]
    np.testing.assert_array_equal(out["versus_class"], second)  # the explainer's own output
    meta = {"contrast": "versus"}  # what the gallery computes from the logits
    np.testing.assert_array_equal(
        contrast.versus_classes(meta, out["logits"], out["target_class"]), second)
    for i, k in enumerate(second):
        one = _explain(model, scenes[i:i + 1], contrast="versus", versus=int(k))
        np.testing.assert_allclose(one["relevance"][0], out["relevance"][i], rtol=0,
                                   atol=1e-6 * float(np.abs(one["relevance"]).max()))


def test_versus_against_the_target_itself_is_an_empty_map(model: onnx.ModelProto,
                                                          scenes: np.ndarray) -> None:
    """y_t - y_t has no gradient: zeros, never NaN."""
    out = _explain(model, scenes, [2, 2], contrast="versus", versus=2)
    assert not out["relevance"].any() and not out["initial_relevance"].any()
    np.testing.assert_array_equal(out["versus_class"], [2, 2])


@pytest.mark.parametrize("variant", [v for v in ct.VARIANTS if v != "versus"])
def test_only_versus_adds_an_output(model: onnx.ModelProto, variant: str) -> None:
    proto = aeq_onnx.compile_explainer(model, contrast=variant, isolate=False)
    assert [o.name for o in proto.graph.output] == [
        "logits", "target_class", "relevance", "initial_relevance"]


def _with_dual_class(model: onnx.ModelProto, t: int) -> onnx.ModelProto:
    """The model with one more logit, Σ_{n≠t} y_n: CLRP's dual class as a classifier row."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name: i for i in out.graph.initializer}
    w, b = numpy_helper.to_array(inits["fc.weight"]), numpy_helper.to_array(inits["fc.bias"])
    others = np.arange(len(w)) != t
    inits["fc.weight"].CopyFrom(numpy_helper.from_array(
        np.vstack([w, w[others].sum(0, keepdims=True)]), "fc.weight"))
    inits["fc.bias"].CopyFrom(numpy_helper.from_array(np.append(b, b[others].sum()), "fc.bias"))
    out.graph.output[0].type.tensor_type.shape.dim[1].dim_value = len(w) + 1
    del out.graph.value_info[:]
    return out


def test_dual_equals_two_separately_compiled_propagations(model: onnx.ModelProto,
                                                          scenes: np.ndarray) -> None:
    """R = max(0, R_t - ρ R_d): R_t from the plain explainer, R_d from the plain explainer of
    the model whose extra class is the dual (target = that class), combined in numpy."""
    out = _explain(model, scenes, contrast="dual")
    classes = out["logits"].shape[1]
    for i, t in enumerate(out["target_class"]):
        x = scenes[i:i + 1]
        r_t = _explain(model, x, [int(t)])["relevance"][0].astype(np.float64)
        dual_model = _with_dual_class(model, int(t))
        r_d = explain(aeq_onnx.compile_explainer(dual_model, isolate=False), x,
                      [classes])["relevance"][0].astype(np.float64)
        rho = np.maximum(r_t, 0).sum() / np.maximum(r_d, 0).sum()
        assert_rel_close(out["relevance"][i], np.maximum(r_t - rho * r_d, 0), TOL, "dual")


@pytest.mark.parametrize("variant", ct.VARIANTS)
def test_batch_equals_per_sample(model: onnx.ModelProto, scenes: np.ndarray,
                                 variant: str) -> None:
    batch = np.concatenate([scenes, np.zeros_like(scenes[:1])])  # and a constant image
    explainer = aeq_onnx.compile_explainer(model, contrast=variant, isolate=False)
    together = explain(explainer, batch)
    check_logits(model, batch, together["logits"])
    for i in range(len(batch)):
        one = explain(explainer, batch[i:i + 1])
        for key in ("relevance", "initial_relevance", "logits"):
            assert np.isfinite(together[key]).all()
            np.testing.assert_allclose(together[key][i], one[key][0], rtol=1e-5,
                                       atol=1e-6 * max(float(np.abs(one[key]).max()), 1e-30))


# --------------------------------------------------------------------------- LRP baselines


@pytest.fixture(scope="module")
def rescnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, np.ndarray]:
    net = bt.seeded(bt.ResCNN(), 0)
    path = tmp_path_factory.mktemp("contrast") / "rescnn.onnx"
    onnx.save(bt.export(net, (3, 16, 16)), path)
    x = np.random.default_rng(10).standard_normal((2, 3, 16, 16)).astype(np.float32)
    return net, path, x


@pytest.mark.parametrize("method", ["lrp-epsilon", "lrp-zplus"])
@pytest.mark.parametrize("variant", ct.VARIANTS)
def test_lrp_contrast_matches_zennit(rescnn: tuple[torch.nn.Module, Path, np.ndarray],
                                     method: str, variant: str) -> None:
    """Zennit started from ``R = s · logits`` with the closed-form seed ``s`` of
    ``contrast_torch.seed`` (itself checked against autograd); ``dual`` combines two Zennit
    runs with the reference's CLRP formula."""
    net, path, x = rescnn
    explainer = aeq_onnx.compile_explainer(path, method=method, contrast=variant, isolate=False)
    out = explain(explainer, x)
    check_logits(onnx.load(str(path)), x, out["logits"])
    rule, eps = method[4:], float(aeq_onnx.LRPEpsilon.epsilon.default)

    def zennit(kind: str) -> np.ndarray:
        return bt.zennit_lrp(net, x, None, rule, eps,
                             seed=lambda y, t: ct.seed(kind, y, t))

    with torch_single_thread():
        if variant == "dual":
            r_t, r_d = (torch.from_numpy(zennit(k)) for k in ("logit", "dual"))
            want = ct.clrp(r_t, r_d).numpy()
        else:
            want = zennit(variant)
    assert_rel_close(out["relevance"], want, TOL, f"{method} {variant}")


# --------------------------------------------------------------------------- contract


class PaperAE(AE):
    """AE's emission as it was before ``contrast`` existed."""

    def emit(self, ctx, plan):  # type: ignore[no-untyped-def]
        chosen, one_hot = chains.seed(ctx, plan)
        grad = chains.split_gradient(ctx, plan, one_hot)
        r0 = initial_relevance(ctx, plan.split, grad)
        relevance = chains.input_relevance(ctx, plan, (plan.split, r0))
        return {"logits": plan.logits, "target_class": chosen, "relevance": relevance,
                "initial_relevance": r0, "split_gradient": grad}


class PaperZPlus(LRPZPlus):
    """LRP's emission as it was before ``contrast`` existed."""

    def emit(self, ctx, plan):  # type: ignore[no-untyped-def]
        chosen, one_hot = chains.seed(ctx, plan)
        start = lrp.seed(ctx.em, plan.logits, one_hot)
        relevance = chains.input_relevance(ctx, plan, (plan.logits, start))
        return {"logits": plan.logits, "target_class": chosen, "relevance": relevance,
                "initial_relevance": start}


@pytest.mark.parametrize(("method", "before"), [("ae", PaperAE()),
                                                ("lrp-zplus", PaperZPlus())])
def test_default_explainers_are_byte_identical(model: onnx.ModelProto, method: str,
                                               before: aeq_onnx.Method) -> None:
    old = aeq_onnx.compile_explainer(model, method=before, isolate=False).SerializeToString()
    for kw in ({}, {"contrast": "logit", "versus": -1}):
        new = aeq_onnx.compile_explainer(model, method=method, isolate=False, **kw)
        assert new.SerializeToString() == old
        assert not any(k.key.endswith(("contrast", "versus")) for k in new.metadata_props)


def test_metadata_records_the_contrast(model: onnx.ModelProto) -> None:
    proto = aeq_onnx.compile_explainer(model, contrast="versus", versus=3, isolate=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["aeq_onnx.contrast"] == "versus" and meta["aeq_onnx.versus"] == "3"
    proto = aeq_onnx.compile_explainer(model, method="lrp-epsilon", contrast="dual",
                                       isolate=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["aeq_onnx.contrast"] == "dual" and "aeq_onnx.versus" not in meta


@pytest.mark.parametrize(("kw", "message"), [
    ({"contrast": "probability"}, "contrast must be one of logit, softmax, margin"),
    ({"versus": 2}, "add contrast='versus'"),
    ({"contrast": "margin", "versus": 2}, "add contrast='versus'"),
    ({"contrast": "versus", "versus": -2}, "versus must be a class index >= 0, or -1"),
    ({"contrast": "versus", "versus": 6}, "versus=6 is not a class of this model (0..5)"),
    ({"contrast": "versus", "versus": 1.5}, "versus must be a class index"),
])
def test_mistakes_are_method_errors(model: onnx.ModelProto, kw: dict, message: str) -> None:
    with pytest.raises(MethodError, match=message.replace("(", r"\(").replace(")", r"\)")):
        aeq_onnx.compile_explainer(model, isolate=False, **kw)


# --------------------------------------------------------------------------- CLI, gallery, audit


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    from tests.helpers_models import small_cnn

    root = tmp_path_factory.mktemp("contrast-cli")
    onnx.save(small_cnn(), root / "model.onnx")
    (root / "photos").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(
            root / "photos" / name)
    return root


def test_explain_and_gallery_name_the_compared_class(work: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from aeq_onnx.cli import main

    out = work / "explained"
    code = main(["--no-isolate", "explain", str(work / "model.onnx"), str(work / "photos"),
                 "--contrast", "versus", "--top-k", "2", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    gallery = (out / "index.html").read_text(encoding="utf-8")
    assert "contrast versus: why the class and not the compared class K." in gallery
    assert printed.count(" vs ") == 4 and gallery.count(" vs ") >= 8
    from aeq_onnx.render.imaging import explain_images

    report = explain_images(work / "model.onnx", [work / "photos"], top_k=2, contrast="versus",
                            isolate=False)
    for source in {r.source for r in report.results}:  # the top two are each other's K
        first, second = sorted((r for r in report.results if r.source == source),
                               key=lambda r: r.rank)
        assert first.versus == f"{second.class_name} ({second.class_index})"
        assert second.versus == f"{first.class_name} ({first.class_index})"


def test_audit_runs_the_contrasts(work: Path) -> None:
    import json

    from aeq_onnx.cli import main

    out = work / "audit"
    code = main(["--no-isolate", "audit", str(work / "model.onnx"), "--images",
                 str(work / "photos"), "--methods",
                 "ae:contrast=versus;versus=1,lrp-zplus:contrast=dual,ae", "--steps", "2",
                 "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    text = json.dumps(report)
    for label in ("ae:contrast=versus,versus=1", "lrp-zplus:contrast=dual"):
        assert label in text
    for name in ("ae_contrast_versus_versus_1.onnx", "lrp-zplus_contrast_dual.onnx"):
        meta = {p.key: p.value for p in onnx.load(str(out / "explainers" / name)).metadata_props}
        assert meta["aeq_onnx.contrast"] == name.split("_")[2].removesuffix(".onnx")


def test_a_fixed_versus_against_the_class_itself_is_labelled(work: Path) -> None:
    from aeq_onnx.render.imaging import explain_images

    report = explain_images(work / "model.onnx", [work / "photos"], top_k=4, contrast="versus",
                            versus=0, isolate=False)
    itself = [r for r in report.results if r.versus == "itself (empty map)"]
    assert len(report.results) == 8 and len(itself) == 2
    assert all(r.class_index == 0 for r in itself)
    assert all(r.versus == "class 0 (0)" for r in report.results if r.class_index != 0)
