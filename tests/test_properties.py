"""Properties every explainer must have (spec sections 4.10, 5, 6), on the golden models and a
few inline ones: the explainer's logits are the model's; a batch equals per-sample runs; no
NaN/Inf on degenerate inputs (dead network, constant / all-zero images, extreme scales, every
target class); BatchNormalization folded by hand gives the same relevance; the equilibrium
Σ R = r − 2 on a plain chain; and a Hypothesis sweep of random conv chains against the torch
reference."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

import aeq_onnx
from tests.helpers import (
    Net,
    assert_rel_close,
    check_logits,
    compare_with_reference,
    explain,
    random_input,
    reference_explain,
    session,
)

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
SCENES = Path(__file__).resolve().parent.parent / "fixtures" / "scenes"
GOLDEN_MODELS = ("vgg_mini", "res_mini")
FLOAT_OUTPUTS = ("logits", "relevance", "initial_relevance", "split_gradient")


@cache
def golden(name: str) -> tuple[onnx.ModelProto, np.ndarray]:
    """A golden model and its input batch."""
    with np.load(GOLDEN / f"{name}.npz") as data:
        x = data["input"]
    return onnx.load(str(GOLDEN / f"{name}.onnx")), x


@cache
def compiled(name: str, ratio: float = 2.0) -> onnx.ModelProto:
    return aeq_onnx.compile_explainer(golden(name)[0], ratio=ratio, expose_gradient=True)


# ----------------------------------------------------------------------------- inline models


def small_cnn(seed: int = 0) -> onnx.ModelProto:
    net = Net((3, 12, 12), seed=seed)
    net.conv(6, 3, pads=1)
    net.relu()
    net.op("MaxPool", [net.cur], kernel_shape=[2, 2], strides=[2, 2])
    net.conv(8, 3, pads=1)
    net.relu()
    net.conv(8, 1)
    net.relu()
    return net.head(classes=4)


def small_resnet(seed: int = 0) -> onnx.ModelProto:
    net = Net((3, 12, 12), seed=seed)
    net.conv(6, 3, pads=1)
    fork = net.relu()
    net.conv(6, 3, pads=1)
    net.relu()
    main = net.conv(6, 3, pads=1)
    net.op("Add", [main, fork])
    a = net.relu()
    b = net.conv(4, 1, x=fork)
    net.op("Concat", [a, b], axis=1)
    net.op("AveragePool", [net.cur], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    net.relu()
    return net.head(classes=6)


def small_mlp(seed: int = 0) -> onnx.ModelProto:
    net = Net((10,), seed=seed)
    net.gemm(12)
    net.relu()
    net.matmul(8)
    net.op("Tanh", [net.cur])
    net.gemm(3, name="y")
    return net.build(classes=3)


INLINE: dict[str, Callable[[int], onnx.ModelProto]] = {
    "cnn": small_cnn, "resnet": small_resnet, "mlp": small_mlp}


def input_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims[1:])


def any_model(name: str) -> tuple[onnx.ModelProto, np.ndarray]:
    """A golden model with its input, or an inline one with a seeded random batch of 2."""
    if name in GOLDEN_MODELS:
        return golden(name)
    model = INLINE[name](0)
    return model, random_input(input_shape(model), seed=1)


def classes_of(model: onnx.ModelProto) -> int:
    return model.graph.output[0].type.tensor_type.shape.dim[1].dim_value


ALL_MODELS = [*GOLDEN_MODELS, *INLINE]


def assert_finite(out: dict[str, np.ndarray], what: str) -> None:
    for key in FLOAT_OUTPUTS:
        if key in out:
            assert np.isfinite(out[key]).all(), f"{what}: non-finite values in {key}"


# ----------------------------------------------------------------------------- logits, batches


@pytest.mark.parametrize("name", ALL_MODELS)
def test_logits_equal_model(name: str) -> None:
    """Spec 6: the explainer's own forward pass returns the model's logits unchanged."""
    model, x = any_model(name)
    explainer = compiled(name) if name in GOLDEN_MODELS else aeq_onnx.compile_explainer(model)
    out = explain(explainer, x)
    check_logits(model, x, out["logits"])
    np.testing.assert_array_equal(out["target_class"], out["logits"].argmax(axis=1))


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_golden_logits_match_exported(name: str) -> None:
    with np.load(GOLDEN / f"{name}.npz") as data:
        want = data["logits"]
    out = explain(compiled(name), golden(name)[1])
    np.testing.assert_allclose(out["logits"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_batch_equals_per_sample(name: str) -> None:
    """Spec 5: a batch (here 4 samples, mixed explicit / top-1 targets) equals each sample
    explained alone, to 1e-5 of each output's max."""
    model, x = any_model(name)
    explainer = compiled(name) if name in GOLDEN_MODELS else aeq_onnx.compile_explainer(
        model, expose_gradient=True)
    batch = np.concatenate([x, x[::-1] * 0.5 + 0.1]).astype(np.float32)
    k = classes_of(model)
    target = np.array([1 % k, -1, -1, 2 % k], np.int64)
    together = explain(explainer, batch, target)
    for i in range(batch.shape[0]):
        alone = explain(explainer, batch[i : i + 1], target[i : i + 1])
        assert alone["target_class"][0] == together["target_class"][i]
        for key in FLOAT_OUTPUTS:
            assert_rel_close(together[key][i : i + 1], alone[key], 1e-5, f"{key}[{i}]")


# ----------------------------------------------------------------------------- targets, degenerate


@pytest.mark.parametrize("net", ["vgg", "resnet"])
def test_ae_is_stable_under_rounding_noise(net: str) -> None:
    """AE relevance moves like the input at rounding level (1e-6 relative noise: <= 2e-5 of
    max; 4.8e-6 measured), unlike integrated gradients, whose piecewise-constant gradients jump
    (3.9e-3 on vgg-scenes): the premise of comparing AE on CUDA with the CPU at 1e-4 of max
    (``tests/test_cuda.py``)."""
    explainer = aeq_onnx.Explainer(SCENES / f"{net}_scenes.onnx", device="cpu")
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    r = explainer.explain(x).relevance
    for seed in range(4):
        noise = np.random.default_rng(seed).standard_normal(x.shape)
        moved = explainer.explain((x * (1 + 1e-6 * noise)).astype(np.float32)).relevance
        assert np.abs(moved - r).max() <= 2e-5 * np.abs(r).max()


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_every_target_class_matches_reference(name: str) -> None:
    """Every class of the golden models as target, for both samples, against the reference."""
    model, x = golden(name)
    k = classes_of(model)
    batch = np.repeat(x, k, axis=0)
    target = np.tile(np.arange(k, dtype=np.int64), x.shape[0])
    out = explain(compiled(name), batch, target)
    np.testing.assert_array_equal(out["target_class"], target)
    assert_finite(out, name)
    for i, t in enumerate(target):
        ref = reference_explain(model, batch[i : i + 1], target=int(t))
        assert_rel_close(out["relevance"][i : i + 1], ref["R"], what=f"R sample {i} target {t}")
        assert_rel_close(out["initial_relevance"][i : i + 1], ref["R0"],
                         what=f"R0 sample {i} target {t}")


DEGENERATE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "all-zero": np.zeros_like,
    "constant-0.5": lambda x: np.full_like(x, 0.5),
    "constant-minus3": lambda x: np.full_like(x, -3.0),
    "scale-1e4": lambda x: x * 1e4,
    "scale-minus1e4": lambda x: x * -1e4,
    "saturated-pm1e4": lambda x: np.where(x > 0, 1e4, -1e4).astype(np.float32),
    "tiny-1e-6": lambda x: x * 1e-6,
    "one-hot-pixel": lambda x: np.pad(np.ones((1,) * x.ndim, x.dtype),
                                      [(0, s - 1) for s in x.shape]),
}


@pytest.mark.parametrize("kind", list(DEGENERATE))
@pytest.mark.parametrize("name", ALL_MODELS)
def test_degenerate_inputs_every_target_finite(name: str, kind: str) -> None:
    """No NaN/Inf on degenerate inputs, for every target class (and top-1); logits still the
    model's."""
    model, x = any_model(name)
    explainer = compiled(name) if name in GOLDEN_MODELS else aeq_onnx.compile_explainer(
        model, expose_gradient=True)
    img = DEGENERATE[kind](x[:1]).astype(np.float32)
    k = classes_of(model)
    batch = np.repeat(img, k + 1, axis=0)
    target = np.arange(-1, k, dtype=np.int64)
    out = explain(explainer, batch, target)
    assert_finite(out, f"{name} {kind}")
    np.testing.assert_array_equal(out["target_class"][1:], target[1:])
    want = session(model).run(None, {model.graph.input[0].name: batch})[0]
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(out["logits"], want, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("kind", ["all-zero", "scale-1e4", "scale-minus1e4", "one-hot-pixel"])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_degenerate_inputs_match_reference(name: str, kind: str) -> None:
    """Where the result is well conditioned, degenerate inputs still match the reference.

    Left out: constant images (the bounded rule's denominator ``conv(X,W) − conv(l,W+) −
    conv(h,W−)`` is 0 in exact arithmetic, so both implementations return rounding noise) and
    tiny inputs (bias-dominated activations make MaxPool windows float64 near-ties whose
    arg-max depends on rounding)."""
    model, x = any_model(name)
    compare_with_reference(model, DEGENERATE[kind](x).astype(np.float32))


def zero_weights(model: onnx.ModelProto, keep: Callable[[str], bool] = lambda _: False
                 ) -> onnx.ModelProto:
    """A copy with every float initializer zeroed except those ``keep`` selects."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype.kind == "f" and not keep(init.name):
            init.CopyFrom(numpy_helper.from_array(np.zeros_like(arr), init.name))
    return out


@pytest.mark.parametrize("name", ALL_MODELS)
def test_dead_network_gives_zero_relevance(name: str) -> None:
    """All-zero weights: logits 0, top-1 is class 0, R0 and R exactly zero, no NaN."""
    model, x = any_model(name)
    dead = zero_weights(model)
    out = explain(aeq_onnx.compile_explainer(dead, expose_gradient=True), x,
                  np.array([-1, classes_of(model) - 1]))
    assert_finite(out, name)
    assert not out["logits"].any()
    assert out["target_class"][0] == 0
    assert not out["initial_relevance"].any()
    assert not out["relevance"].any()


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_dead_classifier_head(name: str) -> None:
    """Live convs, zero dense head: the gradient at the split is zero, so R0 = R = 0."""
    model = INLINE[name](3)
    last_gemm = next(n for n in reversed(model.graph.node) if n.op_type == "Gemm")
    dead = zero_weights(model, keep=lambda init: init not in last_gemm.input)
    x = random_input(input_shape(model), seed=4)
    out = compare_with_reference(dead, x).outputs
    assert not out["split_gradient"].any()
    assert not out["relevance"].any()


def test_dead_relus() -> None:
    """Every Relu of the conv stack dead (large negative biases): A = 0 at the split."""
    net = Net((3, 10, 10), seed=5)
    net.conv(6, 3, pads=1)
    net.relu()
    net.conv(6, 3, pads=1)
    net.relu()
    model = net.head()
    for init in model.graph.initializer:
        if init.name.startswith("b_") and len(init.dims) == 1 and init.dims[0] == 6:
            init.CopyFrom(numpy_helper.from_array(np.full(6, -100.0, np.float32), init.name))
    out = compare_with_reference(model, random_input((3, 10, 10), seed=6)).outputs
    assert not out["initial_relevance"].any()
    assert not out["relevance"].any()


# ----------------------------------------------------------------------------- folded BN


def conv_bn_model(seed: int, scale_sign: np.ndarray | None = None) -> onnx.ModelProto:
    """input → Conv → BN → Relu → Conv → BN → Relu → Conv3×3 → Relu → head; ``scale_sign``
    multiplies the BN scales (per channel) of both BNs."""
    net = Net((3, 10, 10), seed=seed)
    for _ in range(2):
        net.conv(6, 3, pads=1)
        net.batchnorm()
        net.relu()
    net.conv(6, 3, pads=1)
    net.relu()
    model = net.head()
    if scale_sign is not None:
        for init in model.graph.initializer:
            if init.name.startswith("bn_scale"):
                arr = numpy_helper.to_array(init) * scale_sign
                init.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), init.name))
    return model


def fold_bn_by_hand(model: onnx.ModelProto) -> onnx.ModelProto:
    """Conv → BatchNormalization folded in numpy: W' = W·γ/σ, b' = (b − μ)·γ/σ + β."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    producer = {o: n for n in out.graph.node for o in n.output}
    nodes, new_inits = [], dict(inits)
    for node in out.graph.node:
        if node.op_type != "BatchNormalization":
            nodes.append(node)
            continue
        conv = producer[node.input[0]]
        gamma, beta, mean, var = (inits[i] for i in node.input[1:5])
        eps = next(a.f for a in node.attribute if a.name == "epsilon")
        k = (gamma / np.sqrt(var + eps)).astype(np.float64)
        w = inits[conv.input[1]].astype(np.float64)
        b = inits[conv.input[2]].astype(np.float64)
        new_inits[conv.input[1]] = (w * k[:, None, None, None]).astype(np.float32)
        new_inits[conv.input[2]] = ((b - mean) * k + beta).astype(np.float32)
        conv.output[0] = node.output[0]  # the conv now writes the BN's output
    kept = [onnx.NodeProto() for _ in nodes]
    for copy, node in zip(kept, nodes, strict=True):
        copy.CopyFrom(node)
    del out.graph.node[:]
    out.graph.node.extend(kept)
    del out.graph.initializer[:]
    used = {i for n in kept for i in n.input}
    out.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in new_inits.items()
                                 if k in used)
    return out


@pytest.mark.parametrize("ratio", [1.5, 2.0], ids=lambda r: f"r{r}")
def test_folded_batchnorm_same_relevance(ratio: float) -> None:
    """A Conv→BN→Relu model and the same with BN folded by hand give the same relevance
    (1e-4 of max), and both match the reference."""
    model = conv_bn_model(seed=7)
    folded = fold_bn_by_hand(model)
    assert "BatchNormalization" not in {n.op_type for n in folded.graph.node}
    x = random_input((3, 10, 10), seed=8)
    with_bn = compare_with_reference(model, x, ratio=ratio).outputs
    by_hand = compare_with_reference(folded, x, ratio=ratio).outputs
    np.testing.assert_allclose(with_bn["logits"], by_hand["logits"], rtol=1e-5, atol=1e-5)
    for key in ("relevance", "initial_relevance"):
        assert_rel_close(with_bn[key], by_hand[key], what=key)


def test_negative_bn_scale_after_input_conv_is_explained_folded() -> None:
    """BN with some negative scales right after the *first* conv (the bounded rule 4.3).

    Folding BN into that conv turns W into W·γ/σ, which for γ < 0 swaps W+ and W− in the
    bounded rule, so folding is not neutral there (spec 4.1's fold-invariance covers |W|).
    PyTorch's exporters always fold BN, so aeq_onnx folds every Conv→BN before compiling and
    documents it (docs/choices.md): a model with the BN explains exactly like the same model
    folded by hand, and that equals the reference run on the folded model."""
    sign = np.array([1, -1, 1, -1, 1, -1], np.float32)
    model = conv_bn_model(seed=9, scale_sign=sign)
    x = random_input((3, 10, 10), seed=10)
    folded = compare_with_reference(fold_bn_by_hand(model), x).outputs
    with_bn = explain(aeq_onnx.compile_explainer(model), x)
    assert_rel_close(with_bn["relevance"], folded["relevance"], what="relevance")


def test_negative_bn_scale_after_hidden_conv_is_neutral() -> None:
    """Negative BN scales after hidden convs only: |W| absorbs the sign, results agree."""
    model = conv_bn_model(seed=9)
    first_bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    for init in model.graph.initializer:
        if init.name.startswith("bn_scale") and init.name != first_bn.input[1]:
            arr = -numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
    folded = fold_bn_by_hand(model)
    x = random_input((3, 10, 10), seed=10)
    a = compare_with_reference(model, x).outputs
    b = compare_with_reference(folded, x).outputs
    assert_rel_close(a["relevance"], b["relevance"], what="relevance")


# ----------------------------------------------------------------------------- equilibrium


@pytest.mark.parametrize("ratio", [1.0, 1.5, 2.0], ids=lambda r: f"r{r}")
def test_equilibrium_on_vgg_mini(ratio: float) -> None:
    """Spec 4.1/6: on a plain chain Σ R at the input is r − 2 (0 at r = 2: tiny relative to
    the positive mass), per sample."""
    _, x = golden("vgg_mini")
    explainer = aeq_onnx.compile_explainer(golden("vgg_mini")[0], ratio=ratio)
    R = explain(explainer, x)["relevance"].astype(np.float64).reshape(x.shape[0], -1)
    positive = R.clip(min=0).sum(axis=1)
    assert (positive > 0).all()
    np.testing.assert_allclose(R.sum(axis=1), ratio - 2.0, atol=1e-5 * positive.max())
    if ratio == 2.0:
        assert (np.abs(R.sum(axis=1)) <= 1e-5 * positive).all()


def test_explainer_class_matches_compiled_model() -> None:
    """``aeq_onnx.Explainer.explain`` returns what the compiled model returns."""
    model, x = golden("vgg_mini")
    exp = aeq_onnx.Explainer(model, ratio=1.5).explain(x, target=[3, -1])
    out = explain(compiled("vgg_mini", 1.5), x, [3, -1])
    np.testing.assert_array_equal(exp.target, out["target_class"])
    for key, got in (("logits", exp.logits), ("relevance", exp.relevance),
                     ("initial_relevance", exp.initial_relevance)):
        assert_rel_close(got, out[key], 1e-6, key)


# ----------------------------------------------------------------------------- hypothesis


@st.composite
def conv_chains(draw: st.DrawFn) -> tuple[onnx.ModelProto, np.ndarray, float]:
    """1–3 random convs (channels, kernel, stride, pads, dilation, groups, bias), each
    optionally followed by Relu, then the standard head; a random ratio."""
    size = draw(st.integers(5, 12))
    cin = draw(st.integers(1, 4))
    net = Net((cin, size, size), seed=draw(st.integers(0, 2**16)))
    h = w = size
    for _ in range(draw(st.integers(1, 3))):
        k = (draw(st.sampled_from([1, 2, 3, 5])), draw(st.sampled_from([1, 2, 3])))
        stride = draw(st.sampled_from([1, 2]))
        dil = draw(st.sampled_from([1, 1, 2]))
        pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
        divisors = [g for g in range(1, cin + 1) if cin % g == 0]
        group = draw(st.sampled_from(divisors))
        cout = group * draw(st.integers(1, 3))
        h = (h + pads[0] + pads[2] - dil * (k[0] - 1) - 1) // stride + 1
        w = (w + pads[1] + pads[3] - dil * (k[1] - 1) - 1) // stride + 1
        assume(h >= 1 and w >= 1)
        net.conv(cout, k, stride=stride, pads=pads, dilation=dil, group=group,
                 bias=draw(st.booleans()))
        if draw(st.booleans()):
            net.relu()
        cin = cout
    assume(h * w > 1)  # keep the default split at the last map
    x = random_input(net.in_shape, seed=draw(st.integers(0, 2**16)))
    return net.head(classes=3), x, draw(st.sampled_from([1.0, 1.5, 2.0]))


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(conv_chains())
def test_random_conv_chains_match_reference(case: tuple[onnx.ModelProto, np.ndarray, float]
                                            ) -> None:
    model, x, ratio = case
    compare_with_reference(model, x, ratio=ratio)
