"""Saving explainers: one file, or external data beside it past the threshold; nothing else
written, the input model's external-data location never reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import aeq_onnx
from aeq_onnx.errors import InputError
from aeq_onnx.load.loading import load_model
from aeq_onnx.run import saving
from tests.helpers import explain, random_input
from tests.helpers_models import small_cnn


def test_small_explainer_is_one_file(tmp_path: Path) -> None:
    written = saving.save_explainer(aeq_onnx.compile_explainer(small_cnn()), tmp_path / "e.onnx")
    assert written == [tmp_path / "e.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.onnx"]


def test_past_the_threshold_weights_go_beside_it(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_cnn()
    explainer = aeq_onnx.compile_explainer(model)
    x = random_input((3, 8, 8))
    want = explain(explainer, x)["relevance"]
    monkeypatch.setattr(saving, "EXTERNAL_THRESHOLD", 1000)
    monkeypatch.setattr(saving, "EXTERNAL_MIN_BYTES", 0)
    out = tmp_path / "out" / "e.onnx"
    out.parent.mkdir()
    written = saving.save_explainer(explainer, out)
    assert written == [out, out.with_name("e.onnx.data")]
    assert sorted(p.name for p in out.parent.iterdir()) == ["e.onnx", "e.onnx.data"]
    reloaded = load_model(out).model
    np.testing.assert_array_equal(explain(reloaded, x)["relevance"], want)


def test_input_external_location_is_not_reused(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose weights came from 'weights.bin' is saved to OUT.data, not weights.bin."""
    monkeypatch.setattr(saving, "EXTERNAL_MIN_BYTES", 0)
    src = tmp_path / "src"
    src.mkdir()
    onnx.save_model(small_cnn(), src / "m.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    explainer = aeq_onnx.compile_explainer(src / "m.onnx")
    before = (src / "weights.bin").read_bytes()
    written = saving.save_explainer(explainer, tmp_path / "e.onnx", external=True)
    assert [p.name for p in written] == ["e.onnx", "e.onnx.data"]
    assert (src / "weights.bin").read_bytes() == before
    saved = onnx.load(str(written[0]), load_external_data=False)
    locations = {e.value for t in saved.graph.initializer for e in t.external_data
                 if e.key == "location"}
    assert locations == {"e.onnx.data"}


def test_tensor_without_its_data_is_refused(tmp_path: Path) -> None:
    model = small_cnn()
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "elsewhere.bin"
    with pytest.raises(InputError, match="outside the model"):
        saving.save_explainer(model, tmp_path / "e.onnx")
    assert not any(tmp_path.iterdir())


def test_saving_with_external_data_leaves_the_model_whole(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-memory explainer keeps its weights (onnx.save_model would clear them), can be
    saved again and run; each tensor sits at a page-aligned offset of OUT.data."""
    monkeypatch.setattr(saving, "EXTERNAL_MIN_BYTES", 0)
    explainer = aeq_onnx.compile_explainer(small_cnn())
    before = explainer.SerializeToString()
    first = saving.save_explainer(explainer, tmp_path / "a.onnx", external=True)
    assert explainer.SerializeToString() == before
    second = saving.save_explainer(explainer, tmp_path / "b.onnx", external=True)
    assert first[1].read_bytes() == second[1].read_bytes()
    saved = onnx.load(str(first[0]), load_external_data=False)
    offsets = [int(e.value) for t in saved.graph.initializer for e in t.external_data
               if e.key == "offset"]
    assert offsets and all(o % saving.ALIGN == 0 for o in offsets)
    x = random_input((3, 8, 8))
    np.testing.assert_array_equal(explain(load_model(first[0]).model, x)["relevance"],
                                  explain(explainer, x)["relevance"])


def test_serialized_size_counts_every_part() -> None:
    """protos.serialized_size (summed per part: ByteSize fails past 2 GiB) is the real size
    up to a few bytes of field headers per initializer."""
    from aeq_onnx.load import protos

    model = aeq_onnx.compile_explainer(small_cnn())
    exact, summed = model.ByteSize(), protos.serialized_size(model)
    assert exact <= summed <= exact + 8 * len(model.graph.initializer) + 16


def test_session_of_a_model_past_the_inline_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past runtime.INLINE_LIMIT the session gets its big weights as OrtValues (the proto
    cannot be serialised whole): same answers, and onnxruntime owns its copy afterwards."""
    from aeq_onnx.run import runtime

    scene = Path(__file__).resolve().parent.parent / "fixtures/scenes/vgg_scenes.onnx"
    model = aeq_onnx.compile_explainer(scene)
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    want = runtime.Explainer(model, device="cpu").explain(x)
    monkeypatch.setattr(runtime, "INLINE_LIMIT", 0)
    monkeypatch.setattr(runtime, "EXTERNAL_MIN_BYTES", 1024)
    options = runtime.ort.SessionOptions()
    _, kept = runtime.session_bytes(model, options)
    assert kept  # the big weights really travel as arrays on this path
    split = runtime.Explainer(model, device="cpu")
    del kept
    litter = [np.full(1 << 20, 7.0) for _ in range(40)]  # reuse any freed weight buffers
    got = split.explain(x)
    del litter
    np.testing.assert_array_equal(got.relevance, want.relevance)
    np.testing.assert_array_equal(got.logits, want.logits)


def test_explainer_file_opens_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Explainer(saved explainer path) hands onnxruntime the file (no serialised copy of the
    weights) and explains exactly as the in-memory explainer does; a classifier path compiles
    and hands over the compiled proto."""
    from aeq_onnx.run import runtime

    scene = Path(__file__).resolve().parent.parent / "fixtures/scenes/vgg_scenes.onnx"
    explainer = aeq_onnx.compile_explainer(scene)
    path = saving.save_explainer(explainer, tmp_path / "e.onnx", external=True)[0]
    seen: list[object] = []
    real = runtime.make_session
    monkeypatch.setattr(runtime, "make_session", lambda m, *a: seen.append(m) or real(m, *a))
    x = np.random.default_rng(4).random((2, 3, 64, 64), dtype=np.float32)
    from_disk = runtime.Explainer(path, device="cpu").explain(x)
    runtime.Explainer(scene, device="cpu")
    assert seen[0] == path and isinstance(seen[1], onnx.ModelProto)
    in_memory = runtime.Explainer(explainer, device="cpu").explain(x)
    np.testing.assert_array_equal(from_disk.relevance, in_memory.relevance)
