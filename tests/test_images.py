"""Photos -> heatmaps: presets, rendering, layouts, batching of folders and failure handling."""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

import aeq_onnx
from aeq_onnx.cli import main
from aeq_onnx.errors import InputError
from aeq_onnx.render.imaging import (
    COLORMAP,
    channel_sum,
    class_by_name,
    colorize,
    heatmap_rgb,
    load_labels,
    normalise,
    panel,
    save_png,
)
from aeq_onnx.render.presets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    get_preset,
    input_spec,
    preprocess,
    preset_from_metadata,
    store_preset,
)
from tests.helpers_models import small_cnn

MEAN = np.asarray(IMAGENET_MEAN, np.float32)
STD = np.asarray(IMAGENET_STD, np.float32)
# test_rendering_is_deterministic: the heatmap's pixels, its PNG and the panel PNG (the panel's
# title uses Pillow's default font: a Pillow upgrade that changes the font changes this hash)
HEAT_PIXELS_SHA256 = "301b91261e48bd99700fd81f666777f42ee3fa2c298b15527910c25138a61ab0"
HEAT_PNG_SHA256 = "ae50dd793d81c6e7cec592ca0c193031c8be69515f8985976d5b5e299b59fee2"
PANEL_PNG_SHA256 = "edc972ecf30ee983501d4f83d341272c2d7cdac48c1e8bf945a82cdab3fc37ca"


def gradient(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A reproducible RGB uint8 photo [H, W, 3]."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def nhwc_cnn() -> onnx.ModelProto:
    """small_cnn with an NHWC input ``image`` [N, 8, 8, 3] followed by a Transpose to NCHW."""
    model = small_cnn()
    model.graph.input[0].CopyFrom(
        helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 3]))
    model.graph.node.insert(0, helper.make_node("Transpose", ["image"], ["input"],
                                                name="to_nchw", perm=[0, 3, 1, 2]))
    onnx.checker.check_model(model)
    return model


def write_photos(folder: Path, count: int, size: tuple[int, int] = (12, 10)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(gradient(*size, seed=i)).save(path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------- presets

def test_unit_preset_is_pixels_over_255() -> None:
    photo = gradient(8, 8)
    spec = input_spec(["N", 3, 8, 8], get_preset("unit"))
    x, crop = preprocess(Image.fromarray(photo), get_preset("unit"), spec)
    expected = (photo.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)
    assert x.dtype == np.float32 and x.shape == (3, 8, 8)
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(np.asarray(crop), photo)


def test_imagenet_preset_centre_crop_and_normalisation() -> None:
    # size 8 -> shorter side round(8 / 0.875) = 9: a 12x9 photo is not resized, only cropped
    photo = gradient(12, 9)
    preset = get_preset("imagenet")
    x, _ = preprocess(Image.fromarray(photo), preset, input_spec(["N", 3, 8, 8], preset))
    crop = photo[0:8, 2:10].astype(np.float32) / np.float32(255.0)
    expected = ((crop - MEAN) / STD).transpose(2, 0, 1)
    np.testing.assert_array_equal(x, expected)


def test_imagenet_preset_resizes_shorter_side() -> None:
    colour = np.array([10, 128, 250], np.uint8)
    photo = np.broadcast_to(colour, (30, 40, 3)).copy()
    preset = get_preset("imagenet")
    x, crop = preprocess(Image.fromarray(photo), preset, input_spec([1, 3, 8, 8], preset))
    assert crop.size == (8, 8)
    value = (colour.astype(np.float32) / np.float32(255.0) - MEAN) / STD
    np.testing.assert_array_equal(x, np.broadcast_to(value[:, None, None], (3, 8, 8)))


def test_inception_preset_range_and_default_size() -> None:
    photo = np.zeros((400, 400, 3), np.uint8)
    photo[:, 200:] = 255
    preset = get_preset("inception")
    spec = input_spec(["N", 3, "H", "W"], preset)
    assert (spec.height, spec.width) == (299, 299)
    x, _ = preprocess(Image.fromarray(photo), preset, spec)
    assert x.shape == (3, 299, 299)
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(x[:, :, 0], -1.0)
    np.testing.assert_array_equal(x[:, :, -1], 1.0)


def test_custom_preset_size_mean_std() -> None:
    photo = gradient(4, 4)
    preset = get_preset("unit", size=4, mean="0.5,0.25,0", std=[0.5, 0.25, 2])
    assert preset.name == "custom:unit"
    x, _ = preprocess(Image.fromarray(photo), preset, input_spec(["N", 3, "H", "W"], preset))
    scaled = photo.astype(np.float32) / np.float32(255.0)
    expected = ((scaled - np.float32([0.5, 0.25, 0])) / np.float32([0.5, 0.25, 2]))
    np.testing.assert_array_equal(x, expected.transpose(2, 0, 1))


def test_nhwc_and_grey_layouts() -> None:
    photo = gradient(8, 8)
    preset = get_preset("unit")
    spec = input_spec(["N", 8, 8, 3], preset)
    assert spec.layout == "NHWC"
    x, _ = preprocess(Image.fromarray(photo), preset, spec)
    np.testing.assert_array_equal(x, photo.astype(np.float32) / np.float32(255.0))
    grey = input_spec([1, 1, 8, 8], preset)
    g, _ = preprocess(Image.fromarray(photo), preset, grey)
    want = np.asarray(Image.fromarray(photo).convert("L"), np.float32) / np.float32(255.0)
    np.testing.assert_array_equal(g, want[None])


def test_preset_errors() -> None:
    with pytest.raises(InputError, match="unknown preset"):
        get_preset("nope")
    with pytest.raises(InputError, match="does not match"):
        input_spec(["N", 3, 8, 8], get_preset("imagenet", size=224))
    with pytest.raises(InputError, match="channel axis"):
        input_spec(["N", 5, 8, 8], get_preset("unit"))
    with pytest.raises(InputError, match="comma-separated"):
        get_preset("unit", mean="a,b,c")


def test_preset_stored_in_explainer_metadata(tmp_path: Path) -> None:
    preset = get_preset("unit", mean=(0.1, 0.2, 0.3))
    model = store_preset(aeq_onnx.compile_explainer(small_cnn()), preset)
    store_preset(model, preset)  # replaces, never duplicates
    assert [p.key for p in model.metadata_props].count("aeq_onnx.preset") == 1
    path = tmp_path / "explainer.onnx"
    onnx.save(model, path)
    explainer = aeq_onnx.Explainer(path, device="cpu")
    assert preset_from_metadata(explainer.metadata) == preset
    photos = write_photos(tmp_path / "photos", 1)
    report = aeq_onnx.explain_images(explainer, photos)
    assert report.preset == preset and report.ok


# -------------------------------------------------------------------------------- rendering

def test_colormap_diverges_from_white() -> None:
    assert COLORMAP[127].tolist() == [255, 255, 255]
    assert colorize(np.array([[-1.0, 0.0, 1.0]])).tolist() == [
        [[0, 0, 255], [255, 255, 255], [255, 0, 0]]]
    heat = np.array([[-4.0, 0.0, 2.0, 1.0]])
    np.testing.assert_allclose(normalise(heat, 100), [[-1.0, 0.0, 0.5, 0.25]])
    assert not normalise(np.zeros((3, 3))).any()
    relevance = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(channel_sum(relevance), relevance.sum(0))
    np.testing.assert_array_equal(channel_sum(relevance.transpose(1, 2, 0), "NHWC"),
                                  relevance.sum(0))


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    save_png(image, buffer)
    return buffer.getvalue()


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    relevance = np.random.default_rng(7).normal(size=(3, 16, 16)).astype(np.float32)
    heat = Image.fromarray(heatmap_rgb(relevance), "RGB")
    pixels = hashlib.sha256(np.asarray(heat).tobytes()).hexdigest()
    assert pixels == HEAT_PIXELS_SHA256
    assert hashlib.sha256(_png_bytes(heat)).hexdigest() == HEAT_PNG_SHA256
    photo = Image.fromarray(gradient(16, 16))
    first = _png_bytes(panel(photo, relevance, "tabby (281)  score 0.437"))
    second = _png_bytes(panel(photo.copy(), relevance.copy(), "tabby (281)  score 0.437"))
    assert first == second
    assert hashlib.sha256(first).hexdigest() == PANEL_PNG_SHA256


def test_labels_and_names(tmp_path: Path) -> None:
    imagenet = load_labels(None, 1000)
    assert len(imagenet) == 1000 and imagenet[281] == "tabby" and imagenet[0] == "tench"
    assert class_by_name("Tabby", imagenet) == 281
    with pytest.raises(InputError, match="close: tabby"):
        class_by_name("tabbby", imagenet)
    assert load_labels(None, 4) == ["class 0", "class 1", "class 2", "class 3"]
    with pytest.raises(InputError, match="3 labels given"):
        load_labels(["a", "b", "c"], 4)


# ------------------------------------------------------------------------ models and folders

def test_nhwc_model_receives_nhwc_input(tmp_path: Path) -> None:
    explainer = aeq_onnx.Explainer(nhwc_cnn(), device="cpu")
    photos = write_photos(tmp_path / "photos", 3)
    report = aeq_onnx.explain_images(explainer, photos, preset="unit", out=tmp_path / "out")
    assert report.ok and report.layout == "NHWC"
    batch = np.stack([np.asarray(Image.open(p).convert("RGB").resize((8, 8), Image.BILINEAR),
                                 np.float32) / np.float32(255.0) for p in photos])
    # 12x10 photos, unit preset: shorter side 10 -> 8, i.e. resized to 10x8, centre crop 8x8
    batch = np.stack([preprocess(Image.open(p), get_preset("unit"),
                                 input_spec(["N", 8, 8, 3], get_preset("unit")))[0]
                      for p in photos])
    assert batch.shape == (3, 8, 8, 3)
    expected = explainer.explain(batch)
    for i, result in enumerate(report.results):
        relevance = np.load(result.npy)
        assert relevance.shape == (8, 8, 3)
        np.testing.assert_allclose(relevance, expected.relevance[i], rtol=1e-5, atol=1e-6)
        assert result.class_index == expected.target[i]


def test_folder_of_20_in_batches(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    onnx.save(small_cnn(), model)
    photos = write_photos(tmp_path / "photos", 20)
    calls: list[tuple[int, int]] = []
    explainer = aeq_onnx.Explainer(model, device="cpu")
    report = aeq_onnx.explain_images(explainer, [tmp_path / "photos"], preset="unit",
                                     batch_size=6, out=tmp_path / "out",
                                     progress=lambda d, t: calls.append((d, t)))
    assert calls == [(6, 20), (12, 20), (18, 20), (20, 20)]
    assert report.ok and len(report.results) == 20
    assert [Path(r.source) for r in report.results] == photos
    spec = input_spec(["N", 3, 8, 8], get_preset("unit"))
    for path, result in zip(photos, report.results, strict=True):
        x, _ = preprocess(Image.open(path), get_preset("unit"), spec)
        alone = explainer.explain(x[None])
        assert result.class_index == alone.target[0]
        assert result.png is not None and result.png.is_file()
        assert result.png.name.startswith(path.stem + f".{result.class_index}-class-")
        np.testing.assert_allclose(np.load(result.npy), alone.relevance[0], rtol=1e-5,
                                   atol=1e-6)
        assert Image.open(result.png).format == "PNG"
    assert (tmp_path / "out" / "index.html").is_file()


def test_targets_top_k_and_names(tmp_path: Path) -> None:
    explainer = aeq_onnx.Explainer(small_cnn(), device="cpu")
    photos = write_photos(tmp_path / "photos", 2)
    top = aeq_onnx.explain_images(explainer, photos, preset="unit", top_k=3)
    assert [(Path(r.source).name, r.rank) for r in top.results] == [
        ("img00.png", 0), ("img00.png", 1), ("img00.png", 2),
        ("img01.png", 0), ("img01.png", 1), ("img01.png", 2)]
    first = top.results[:3]
    assert first[0].score >= first[1].score >= first[2].score
    assert len({r.class_index for r in first}) == 3
    fixed = aeq_onnx.explain_images(explainer, photos, preset="unit", target=2)
    assert [r.class_index for r in fixed.results] == [2, 2]
    named = aeq_onnx.explain_images(explainer, photos, preset="unit", target_name="dog",
                                    labels=["cat", "dog", "car", "cup"])
    assert [(r.class_index, r.class_name) for r in named.results] == [(1, "dog"), (1, "dog")]
    with pytest.raises(InputError, match="at most one"):
        aeq_onnx.explain_images(explainer, photos, target=1, top_k=2)
    with pytest.raises(InputError, match="out of range"):
        aeq_onnx.explain_images(explainer, photos, preset="unit", target=9)
    with pytest.raises(InputError, match="exceeds the model's 4 classes"):
        aeq_onnx.explain_images(explainer, photos, preset="unit", top_k=5)


# ------------------------------------------------------------------------------------ CLI

def test_cli_skips_corrupt_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model.onnx"
    onnx.save(small_cnn(), model)
    photos = write_photos(tmp_path / "photos", 3)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    truncated = tmp_path / "photos" / "truncated.png"
    truncated.write_bytes(photos[0].read_bytes()[:60])
    out = tmp_path / "out"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the progress bar is for terminals
    code = main(["explain", str(model), str(tmp_path / "photos"), str(tmp_path / "missing.png"),
                 "--preset", "unit", "--out", str(out), "--batch-size", "2", "--device", "cpu"])
    text, err = capsys.readouterr()
    assert code == 1
    assert "(3 failed)" in text
    failed = [line for line in err.splitlines() if line.startswith("aeq: failed: ")]
    assert len(failed) == 3  # one line per bad item, on stderr
    for bad in ("broken.jpg", "truncated.png", "missing.png"):
        assert any(bad in line for line in failed)
    assert "no such file or folder" in err and "as an image" in err
    assert "5/5 images" in err  # the progress bar
    for path in photos:
        assert path.name in text
        assert len(list(out.glob(f"{path.stem}.*.png"))) == 1
        assert len(list(out.glob(f"{path.stem}.*.npy"))) == 1
    assert "CPUExecutionProvider" in text and "score" in text
    assert "Failed" in (out / "index.html").read_text()


def test_cli_images_ok_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.onnx"
    onnx.save(small_cnn(), model)
    photos = write_photos(tmp_path / "photos", 2)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\ncar\ncup\n")
    out = tmp_path / "out"
    code = main(["explain", str(model), *map(str, photos), "--labels", str(labels),
                 "--target-name", "car", "--preset", "unit", "--out", str(out)])
    text, _ = capsys.readouterr()
    assert code == 0 and text.count("car (2)") == 2
    assert sorted(p.name for p in out.glob("*.png")) == ["img00.2-car.png", "img01.2-car.png"]
    code = main(["explain", str(model), str(photos[0]), "--top-k", "2", "--preset", "unit",
                 "--out", str(out)])
    assert code == 0
    code = main(["explain", str(model), str(photos[0]), "--target-name", "zebra"])
    _, err = capsys.readouterr()
    assert code == 1 and "no class named 'zebra'" in err and "Traceback" not in err
    code = main(["explain", str(model), str(photos[0]), str(tmp_path / "x.npy")])
    _, err = capsys.readouterr()
    assert code == 1 and "not both" in err


def test_core_imports_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; import aeq_onnx, aeq_onnx.render.imaging, "
            "aeq_onnx.render.gallery, aeq_onnx.render.presets, aeq_onnx.cli; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize(("name", "size", "resize", "shape"), [
    ("imagenet", 224, 256, (300, 451)), ("imagenet", 224, 256, (400, 267)),
    ("inception", 299, 341, (427, 640)), ("unit", 16, 16, (37, 23))])
def test_presets_match_torchvision(name: str, size: int, resize: int,
                                   shape: tuple[int, int]) -> None:
    transforms = pytest.importorskip("torchvision.transforms")
    photo = Image.fromarray(gradient(shape[1], shape[0], seed=3))
    preset = get_preset(name)
    reference = transforms.Compose([
        transforms.Resize(resize), transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize(preset.mean, preset.std)])(photo).numpy()
    x, _ = preprocess(photo, preset, input_spec(["N", 3, size, size], preset))
    np.testing.assert_array_equal(x, reference)
