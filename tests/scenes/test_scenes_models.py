"""The committed scene CNNs (fixtures/scenes/*_scenes.onnx): format, dynamic batch, accuracy."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from aeq_onnx.render.presets import Preset
from fixtures.scenes.generator import NUM_CLASSES, make_arrays
from fixtures.scenes.train import HERE, PRESET, RECORD, onnx_path, preprocess, sha256

NETS = ("vgg", "resnet")
FRESH_SEED = 1234  # neither the training (1) nor the test (2) seed


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


def test_record_and_preset_match() -> None:
    record = json.loads((HERE / RECORD).read_text(encoding="utf-8"))
    for name in NETS:
        entry = record["models"][name]
        assert entry["sha256"] == sha256(onnx_path(HERE, name))
        assert entry["onnx_test_acc"] > 0.5
    text = (HERE / "preset.json").read_text(encoding="utf-8")
    assert json.loads(text) == PRESET
    preset = Preset.from_json(text)
    assert preset.size == 64 and preset.crop_fraction == 1.0 and preset.mean == (0.5,) * 3
