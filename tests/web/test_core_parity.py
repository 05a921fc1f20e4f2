"""aeq-core.js (the page's and the Node example's preprocessing and heatmaps) against the Python
it mirrors: Pillow's bilinear resize, presets.preprocess, imaging.heatmap_rgb / overlay,
np.percentile, np.save and the softmax top-k. Two implementations, one truth: every byte and
every float32 must be equal, not close."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from PIL import Image

import aeq_onnx
from aeq_onnx.render.imaging import COLORMAP, _softmax, heatmap_rgb, overlay
from aeq_onnx.render.presets import get_preset, input_spec, preprocess
from tests.helpers_models import small_cnn

NODE = shutil.which("node")
RUNNER = Path(__file__).with_name("core_runner.js")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (Node 20+)")


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()


def _run(cases: list[dict[str, Any]]) -> list[Any]:
    assert NODE is not None
    done = subprocess.run([NODE, str(RUNNER)], input=json.dumps(cases), capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, errors[:3]
    return [r["ok"] for r in results]


def _bytes(text: str, dtype: Any = np.uint8) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype)


def test_bilinear_resize_equals_pillow() -> None:
    """Random sizes, up and down, RGB and L, both of Pillow's pass orders."""
    rng = np.random.default_rng(0)
    cases, wants = [], []
    for i in range(160):
        bands = 1 if i % 4 == 0 else 3
        h, w, nh, nw = (int(v) for v in rng.integers(1, 120, 4))
        if i % 9 == 0:
            nw = w  # one pass only
        if i % 10 == 0:
            nh, nw = max(1, h // 5), w - 1  # the height shrinks much more: vertical pass first
        shape = (h, w) if bands == 1 else (h, w, 3)
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        image = Image.fromarray(pixels, "L" if bands == 1 else "RGB")
        wants.append(np.asarray(image.resize((nw, nh), Image.Resampling.BILINEAR)).ravel())
        cases.append({"kind": "resize", "data": _b64(pixels), "width": w, "height": h,
                      "bands": bands, "newWidth": nw, "newHeight": nh})
    for got, want, case in zip(_run(cases), wants, cases, strict=True):
        assert np.array_equal(_bytes(got), want), {k: case[k] for k in case if k != "data"}


PRESET_CASES = [
    ("imagenet", [None, 3, 224, 224]),
    ("inception", [None, 3, "h", "w"]),  # symbolic size: the preset's default, 299
    ("unit", [None, 32, 32, 3]),  # NHWC
    ("unit", [1, 1, 28, 28]),  # one channel: Pillow's convert("L")
    (get_preset("imagenet", size=48, mean="0.3,0.4,0.5", std="0.2,0.1,0.3").to_json(),
     [None, 48, 48, 3]),
]


@pytest.mark.parametrize(("preset", "shape"), PRESET_CASES,
                         ids=["imagenet", "inception", "unit-nhwc", "grey", "custom"])
def test_preprocess_equals_python(preset: str, shape: list[Any]) -> None:
    """The float32 tensor and the cropped photo, bit for bit, on photos of several shapes."""
    rng = np.random.default_rng(1)
    resolved = get_preset(preset)
    spec = input_spec(shape, resolved)
    cases, wants = [], []
    for h, w in ((37, 53), (300, 200), (224, 224), (17, 400), (480, 640), (256, 255)):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x, photo = preprocess(Image.fromarray(pixels), resolved, spec)
        wants.append((x, np.asarray(photo)))
        cases.append({"kind": "preprocess", "data": _b64(pixels), "width": w, "height": h,
                      "preset": preset, "shape": shape})
    for got, (x, photo) in zip(_run(cases), wants, strict=True):
        assert got["spec"] == {"layout": spec.layout, "channels": spec.channels,
                               "height": spec.height, "width": spec.width}
        tensor = _bytes(got["tensor"], np.float32).reshape(x.shape)
        assert np.array_equal(tensor, x), float(np.abs(tensor - x).max())
        assert np.array_equal(_bytes(got["photo"]).reshape(photo.shape), photo)


def _relevances() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    dense = rng.normal(size=(3, 20, 24)).astype(np.float32)
    spiky = dense * (rng.random(dense.shape) < 0.05)
    broken = dense.copy()
    broken[0, :2, :3] = [np.nan, np.inf, -np.inf]
    return [("NCHW", dense), ("NHWC", dense.transpose(1, 2, 0).copy()), ("NCHW", spiky),
            ("NCHW", broken), ("NCHW", np.zeros_like(dense)),
            ("NCHW", np.zeros_like(dense) + np.float32(1e-30)), ("NCHW", dense[:1].copy()),
            ("NCHW", np.round(dense * 2).astype(np.float32))]  # ties


def test_heatmap_and_overlay_equal_python() -> None:
    """Colormap, percentile scaling, rounding and the grey overlay: the same bytes."""
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    cases, wants = [], []
    for percentile in (99.5, 50.0):
        for layout, rel in _relevances():
            channels = rel.shape[0] if layout == "NCHW" else rel.shape[-1]
            wants.append((heatmap_rgb(rel, layout, percentile),  # type: ignore[arg-type]
                          np.asarray(overlay(Image.fromarray(photo), rel, layout,  # type: ignore[arg-type]
                                             percentile))))
            cases.append({"kind": "heatmap", "relevance": _b64(rel), "layout": layout,
                          "channels": channels, "height": 20, "width": 24,
                          "photo": _b64(photo), "percentile": percentile})
    for got, (heat, over) in zip(_run(cases), wants, strict=True):
        assert np.array_equal(_bytes(got["heat"]).reshape(heat.shape), heat)
        assert np.array_equal(_bytes(got["overlay"]).reshape(over.shape), over)


def test_percentile_round_colormap_npy_topk() -> None:
    """np.percentile ('linear'), Python's round, the colormap table, np.save's bytes, top-k."""
    rng = np.random.default_rng(4)
    arrays = [rng.random(n) * 10 for n in (1, 2, 7, 1000, 50176)]
    ps = (99.5, 50.0, 0.0, 100.0, 12.3)
    halves = [0.5, 1.5, 2.5, 126.5, 253.5, 3.4999999, 7.0, 0.0]
    shapes = [[3, 4, 5], [7], [4, 5, 3]]
    npys = [rng.normal(size=s).astype(np.float32) for s in shapes]
    logits = rng.normal(size=1000).astype(np.float32)
    logits[10] = logits[20] = logits.max() + 1  # a tie at the top: the lower index first
    cases: list[dict[str, Any]] = [{"kind": "percentile", "values": a.tolist(), "p": p}
                                   for a in arrays for p in ps]
    cases += [{"kind": "round", "values": halves}, {"kind": "colormap"}]
    cases += [{"kind": "npy", "data": _b64(a), "shape": list(a.shape)} for a in npys]
    cases.append({"kind": "topk", "logits": _b64(logits), "k": 5})
    got = _run(cases)
    want_pct = [float(np.percentile(a, p)) for a in arrays for p in ps]
    assert got[:len(want_pct)] == want_pct
    rest = got[len(want_pct):]
    assert rest[0] == [round(v) for v in halves]
    assert np.array_equal(_bytes(rest[1]).reshape(COLORMAP.shape), COLORMAP)
    for text, array in zip(rest[2:5], npys, strict=True):
        buffer = io.BytesIO()
        np.save(buffer, array)
        assert base64.b64decode(text) == buffer.getvalue()
    top = rest[5]
    order = np.argsort(-logits, kind="stable")[:5]
    probs = _softmax(logits[None])[0]
    assert [c["index"] for c in top] == order.tolist()
    assert np.allclose([c["prob"] for c in top], probs[order], rtol=0, atol=1e-12)


def test_explainer_info_reads_the_contract(tmp_path: Path) -> None:
    """Data input, spec, stored preset and class count parsed from the ONNX file in JS."""
    stored = aeq_onnx.store_preset(aeq_onnx.compile_explainer(small_cnn(classes=6)),
                                   get_preset("unit", size=8))
    bare = aeq_onnx.compile_explainer(small_cnn(classes=6))
    onnx.save(stored, tmp_path / "stored.onnx")
    onnx.save(bare, tmp_path / "bare.onnx")
    onnx.save(small_cnn(), tmp_path / "classifier.onnx")
    got = _run([{"kind": "info", "path": str(tmp_path / "stored.onnx")},
                {"kind": "info", "path": str(tmp_path / "bare.onnx"), "preset": "unit"}])
    assert got[0]["input"] == "input" and got[0]["classes"] == 6 and got[0]["stored"]
    assert got[0]["spec"] == {"layout": "NCHW", "channels": 3, "height": 8, "width": 8}
    assert get_preset(json.dumps(got[0]["preset"])) == get_preset("unit", size=8)
    assert got[1]["preset"]["name"] == "unit" and not got[1]["stored"]
    done = subprocess.run([str(NODE), str(RUNNER)], capture_output=True, text=True, timeout=60,
                          input=json.dumps([{"kind": "info",
                                             "path": str(tmp_path / "classifier.onnx")}]),
                          check=True)
    assert "not an aeq_onnx explainer" in json.loads(done.stdout)[0]["error"]
