"""The committed scene models (fixtures/scenes/*_scenes.onnx: two CNNs, a ViT, a ConvNeXt): format,
dynamic batch, accuracy, and the token models' op patterns."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from aeq_onnx.render.presets import Preset
from fixtures.scenes.generator import NUM_CLASSES, make_arrays
from fixtures.scenes.onnx_eval import op_counts
from fixtures.scenes.train import (
    HERE,
    PRESET,
    RECORD,
    SLICE,
    TEST_SEED,
    onnx_path,
    parse_nets,
    preprocess,
    sha256,
)

NETS = ("vgg", "resnet", "vit", "convnext")
TOKEN_NETS = ("vit", "convnext")
FRESH_SEED = 1234  # neither the training (1) nor the test (2) seed


def _record() -> dict:
    return json.loads((HERE / RECORD).read_text(encoding="utf-8"))


def _session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(onnx_path(HERE, name)), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", NETS)
def test_model_format(name: str) -> None:
    model = onnx.load(str(onnx_path(HERE, name)))
    onnx.checker.check_model(model)
    assert model.ir_version == 10
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("input", "logits")
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 64, 64]
    assert onnx_path(HERE, name).stat().st_size < 4_000_000


@pytest.mark.parametrize("name", NETS)
def test_dynamic_batch(name: str) -> None:
    x = preprocess(make_arrays(5, FRESH_SEED)[0])
    session = _session(name)
    batch = session.run(["logits"], {"input": x})[0]
    assert batch.shape == (5, NUM_CLASSES)
    single = np.concatenate([session.run(["logits"], {"input": x[i: i + 1]})[0]
                             for i in range(5)])
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NETS)
def test_classifies_fresh_scenes(name: str) -> None:
    """48 fresh scenes (8 per class): chance is 1/6; a model that works gets >= 75%."""
    images, labels = make_arrays(48, FRESH_SEED)
    logits = _session(name).run(["logits"], {"input": preprocess(images)})[0]
    accuracy = float((logits.argmax(1) == labels).mean())
    assert accuracy >= 0.75, f"{name}: {accuracy:.2f} on fresh scenes"


@pytest.fixture(scope="module")
def test_slice() -> tuple[np.ndarray, np.ndarray]:
    """Test scenes 0..SLICE-1 (seed 2), preprocessed, and their labels."""
    images, labels = make_arrays(SLICE, TEST_SEED)
    return preprocess(images), labels


@pytest.mark.parametrize("name", NETS)
def test_recorded_accuracy_on_test_slice(name: str, test_slice: tuple) -> None:
    """The committed file reproduces its recorded accuracy on the first test scenes (one
    prediction may flip on another CPU), and a token model's recorded test accuracy is >= 85%."""
    x, y = test_slice
    entry = _record()["models"][name]
    accuracy = float((_session(name).run(["logits"], {"input": x})[0].argmax(1) == y).mean())
    assert abs(accuracy - entry["slice_acc"]) <= 1.5 / SLICE, (name, accuracy, entry["slice_acc"])
    if name in TOKEN_NETS:
        assert entry["onnx_test_acc"] >= 0.85 and entry["torch_test_acc"] >= 0.85
        assert entry["onnx_torch_max_abs_diff"] < 1e-3


def test_vit_op_patterns() -> None:
    """torchvision vit_b_16's patterns: a Conv on the input (here the conv stem's first; BatchNorm
    folded), class token Concat, LayerNormalization (opset 17; 2 per block + the final one),
    attention MatMul-Softmax-MatMul, exact GELU (Erf)."""
    model = onnx.load(str(onnx_path(HERE, "vit")))
    ops = op_counts(onnx_path(HERE, "vit"))
    assert ops["LayerNormalization"] == 2 * 4 + 1 and ops["Softmax"] == 4 and ops["Erf"] == 4
    assert ops["Conv"] >= 1 and ops["Concat"] >= 1 and ops["MatMul"] >= 4 * 4
    assert ops["BatchNormalization"] == 0
    nodes = model.graph.node
    assert any(n.op_type == "Conv" and n.input[0] == "input" for n in nodes)
    expanded = {n.output[0] for n in nodes if n.op_type == "Expand"}  # the class token, batched
    assert any(n.op_type == "Concat" and expanded & set(n.input) for n in nodes)
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    assert any(n.op_type == "Add" and any(shapes.get(i) == [1, 65, 96] for i in n.input)
               for n in nodes)  # the position embedding


def test_convnext_op_patterns() -> None:
    """torchvision convnext's patterns: depthwise 7x7 Conv, channels-last LayerNormalization between
    Transposes, pointwise MatMul, Erf GELU, layer-scale Mul, GlobalAveragePool head."""
    model = onnx.load(str(onnx_path(HERE, "convnext")))
    ops = op_counts(onnx_path(HERE, "convnext"))
    blocks = ops["Erf"]
    assert blocks >= 3 and ops["MatMul"] == 2 * blocks and ops["GlobalAveragePool"] == 1
    assert ops["LayerNormalization"] >= blocks + 2 and ops["Transpose"] >= 2 * blocks
    depthwise = [n for n in model.graph.node if n.op_type == "Conv"
                 and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    assert len(depthwise) == blocks
    for node in depthwise:
        kernel = next(a.ints for a in node.attribute if a.name == "kernel_shape")
        assert list(kernel) == [7, 7]


def test_nets_option() -> None:
    """``--nets``: comma- or space-separated, in training order; unknown names are refused."""
    assert parse_nets(["convnext,vit"]) == ["vit", "convnext"]
    assert parse_nets(["convnext", "vgg"]) == ["vgg", "convnext"]
    with pytest.raises(SystemExit, match="unknown net"):
        parse_nets(["vit,deit"])


def test_record_and_preset_match() -> None:
    record = _record()
    for name in NETS:
        entry = record["models"][name]
        assert entry["sha256"] == sha256(onnx_path(HERE, name))
        assert entry["onnx_test_acc"] > 0.5
    text = (HERE / "preset.json").read_text(encoding="utf-8")
    assert json.loads(text) == PRESET
    preset = Preset.from_json(text)
    assert preset.size == 64 and preset.crop_fraction == 1.0 and preset.mean == (0.5,) * 3
