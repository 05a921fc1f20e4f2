"""The ``aeq web`` page in headless Chromium, read back from the page and compared with Python.

A bundled photo goes through the page's own code path (``aeq.explainFiles``, what a drop or the
file picker calls); the probe then clicks the second class of the page's top-5 list. From the
page come: the preprocessing tensor, the logits and top-5 (and the names shown), the relevance of
both classes, and the heatmap/overlay pixels of the canvases shown. Python onnxruntime and
aeq_onnx's own preprocessing and heatmaps must agree: the tensor bit for bit, the top-5 exactly,
the relevance within 1e-4 of max |R|, the canvases byte for byte with Python's rendering of the
page's relevance. Single-threaded WebAssembly (no COOP/COEP headers), multi-threaded (with
them), an NHWC Keras model with the ``unit`` preset and its own labels, and WebGPU (Chromium's
SwiftShader adapter) with its fallback to WebAssembly. Also: nothing is loaded from outside the
site (no Content-Security-Policy violation, every resource from the site's origin), the
too-large message, and the file:// message.

`make test` installs chromium (Debian) and onnxruntime-web (npm); without them these tests are
skipped with that reason.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from page_driver import CHROMIUM, FLAGS, floats, pixels, run_probe
from PIL import Image
from web_models import (
    ORT_WEB,
    PHOTOS,
    REL_TOL,
    Reference,
    keras_mobile_explainer,
    python_reference,
    rel_error,
    tiny_imagenet_explainer,
)

from aeq_onnx.render.imaging import heatmap_rgb, overlay
from aeq_onnx.web import write_site

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                       "(make test installs it)"),
    pytest.mark.skipif(not ORT_WEB.is_file(), reason="onnxruntime-web is not installed in "
                       "web/node_modules (make npm installs it)"),
]
PHOTO = PHOTOS / "chelsea.jpg"

#: Explain the photo as a drop does, click the second class, report what the page holds.
EXPLAIN = """
await aeq.ready;
const blob = await (await fetch('photo.jpg')).blob();
const [card] = await aeq.explainFiles([new File([blob], 'dropped.jpg', { type: blob.type })]);
if (card.error) return { error: card.error };
const offered = async (c) => Object.fromEntries(await Promise.all(Object.entries(c.files).map(
  async ([name, blob]) => [name, b64(new Uint8Array(await blob.arrayBuffer()))])));
const shown = async (c) => ({ target: c.target, relevance: b64(c.relevance),
  heat: canvasPixels(c.dom.heat), overlay: canvasPixels(c.dom.overlay), files: await offered(c) });
const first = await shown(card);
const buttons = [...card.dom.classes.querySelectorAll('button')];
buttons[1].click();
await aeq.pending;
return { backend: aeq.backend, isolated: crossOriginIsolated, tensor: b64(card.tensor),
  logits: b64(card.logits), top5: card.top5, labels: buttons.map((b) => b.textContent),
  backendText: document.getElementById('backend-info').textContent,
  pressed: buttons.map((b) => b.getAttribute('aria-pressed')), first, second: await shown(card),
  examples: await aeq.examples.then(
    () => Promise.all(aeq.cards.filter((c) => c !== card).map(shown))) };
"""


def _site(tmp: Path, explainer: Path, **kwargs: Any) -> Path:
    """The site, with the photo to drop beside it and the same photo as its example."""
    root = write_site(explainer, tmp / "site", examples=[PHOTO], **kwargs).root
    shutil.copyfile(PHOTO, root / "photo.jpg")
    return root


def _check(report: dict[str, Any], ref: Reference, names: list[str], layout: str) -> None:
    """Everything the page reported equals Python's answer."""
    assert "error" not in report, report.get("error")
    assert not report["seen"]["violations"] and not report["seen"]["errors"], report["seen"]
    origin = report["resources"][0].split("/")[2]
    assert all(url.split("/")[2] == origin for url in report["resources"]), report["resources"]
    tensor = floats(report["tensor"]).reshape(ref.tensor.shape)
    assert np.array_equal(tensor, ref.tensor), float(np.abs(tensor - ref.tensor).max())
    assert np.allclose(floats(report["logits"]), ref.logits, rtol=0, atol=1e-4)
    assert [c["index"] for c in report["top5"]] == ref.top5
    assert [lab.split(".", 1)[1].split(" (")[0].strip() for lab in report["labels"]] == [
        names[k] for k in ref.top5]
    assert report["pressed"] == ["false", "true", "false", "false", "false"][:len(ref.top5)]
    for key, cls in zip(("first", "second"), ref.top5[:2], strict=True):
        shown = report[key]
        assert shown["target"] == cls
        want = ref.relevance[cls]
        got = floats(shown["relevance"]).reshape(want.shape)
        err = rel_error(got, want)
        print(f"{layout} {report['backend']['threads']} thread(s), class {cls}: page vs python "
              f"relevance {err:.3g} of max |R|")
        assert err <= REL_TOL, (key, err)
        h, w = want.shape[1:] if layout == "NCHW" else want.shape[:2]
        assert np.array_equal(pixels(shown["heat"], h, w), heatmap_rgb(got, layout))  # type: ignore[arg-type]
        assert np.array_equal(pixels(shown["overlay"], h, w),
                              np.asarray(overlay(ref.photo, got, layout)))  # type: ignore[arg-type]
        _check_downloads(shown["files"], cls, got, pixels(shown["heat"], h, w),
                         pixels(shown["overlay"], h, w))
    [example] = report["examples"]  # explained on opening: the same as the dropped photo
    assert example["target"] == ref.top5[0]
    assert example["relevance"] == report["first"]["relevance"]


def _check_downloads(files: dict[str, str], cls: int, relevance: np.ndarray, heat: np.ndarray,
                     over: np.ndarray) -> None:
    """The page offers the relevance as np.save writes it (the same bytes) and PNGs of the
    pixels it shows."""
    by_end = {name.split(".", 2)[-1]: base64.b64decode(data) for name, data in files.items()}
    assert sorted(by_end) == ["heatmap.png", "npy", "overlay.png"], sorted(files)
    assert all(name.startswith(f"dropped.{cls}-") or name.startswith(f"chelsea.{cls}-")
               for name in files), sorted(files)
    buffer = io.BytesIO()
    np.save(buffer, relevance)
    assert by_end["npy"] == buffer.getvalue()
    for name, want in (("heatmap.png", heat), ("overlay.png", over)):
        rgba = np.asarray(Image.open(io.BytesIO(by_end[name])).convert("RGBA"))
        assert (rgba[:, :, 3] == 255).all()  # Chromium writes RGBA PNGs, opaque
        assert np.array_equal(rgba[:, :, :3], want)


@pytest.fixture(scope="module")
def imagenet_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Reference]:
    tmp = tmp_path_factory.mktemp("web-imagenet")
    explainer = tiny_imagenet_explainer(tmp / "tiny.explainer.onnx")
    return _site(tmp, explainer), python_reference(explainer, PHOTO)


@pytest.fixture(scope="module")
def imagenet_names() -> list[str]:
    from aeq_onnx.render.imaging import load_labels

    return load_labels(None, 1000)


def test_single_thread_page_equals_python(imagenet_case: tuple[Path, Reference],
                                          imagenet_names: list[str]) -> None:
    site, ref = imagenet_case
    report = run_probe(site, EXPLAIN, isolate=False)
    _check(report, ref, imagenet_names, "NCHW")
    assert report["backend"]["name"] == "wasm" and report["backend"]["threads"] == 1
    assert not report["isolated"] and "1 thread" in report["backendText"]


def test_multi_thread_page_equals_python(imagenet_case: tuple[Path, Reference],
                                         imagenet_names: list[str]) -> None:
    site, ref = imagenet_case
    report = run_probe(site, EXPLAIN, isolate=True, query="?threads=2")
    _check(report, ref, imagenet_names, "NCHW")
    assert report["isolated"] and report["backend"] == {"name": "wasm", "threads": 2,
                                                        "isolated": True, "note": ""}
    assert "WebAssembly, 2 threads" in report["backendText"]


def test_keras_nhwc_unit_preset_equals_python(tmp_path: Path) -> None:
    if importlib.util.find_spec("tf2onnx") is None:  # not imported here: see load_triton_first
        pytest.skip("the keras extra (tensorflow-cpu, tf2onnx) is not installed")
    explainer = keras_mobile_explainer(tmp_path / "mobile.explainer.onnx")
    names = [f"keras class {k}" for k in range(10)]
    (tmp_path / "labels.txt").write_text("\n".join(names), encoding="utf-8")
    site = _site(tmp_path, explainer, labels=tmp_path / "labels.txt")
    ref = python_reference(explainer, PHOTO)
    assert ref.preset.name == "unit" and ref.tensor.shape == (32, 32, 3)
    report = run_probe(site, EXPLAIN, isolate=True)
    _check(report, ref, names, "NHWC")


def test_webgpu_falls_back_to_wasm_and_equals_python(imagenet_case: tuple[Path, Reference],
                                                     imagenet_names: list[str]) -> None:
    """With a WebGPU adapter (SwiftShader) the page opens the explainer on WebGPU; onnxruntime-web
    1.30.0's WebGPU MaxPool has no indices output, so the first run fails there and the page
    reopens the explainer on WebAssembly, says so, and still equals Python."""
    site, ref = imagenet_case
    report = run_probe(site, "const gpu = navigator.gpu && await navigator.gpu.requestAdapter();\n"
                       "if (!gpu) return { noAdapter: true };\n" + EXPLAIN, isolate=True,
                       webgpu=True)
    if report.get("noAdapter"):
        pytest.skip("this chromium offers no WebGPU adapter (SwiftShader)")
    _check(report, ref, imagenet_names, "NCHW")
    assert report["backend"]["name"] == "wasm"
    assert "WebGPU could not run this explainer" in report["backendText"]
    assert "MaxPool" in report["backend"]["note"]


def test_too_large_explainer_gets_a_clear_message(imagenet_case: tuple[Path, Reference],
                                                  tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(imagenet_case[0], site)
    config = site / "config.js"
    text = config.read_text(encoding="utf-8")
    limit = json.loads(text.removeprefix("window.AEQ_CONFIG = ").rstrip().rstrip(";"))
    limit["maxBytes"] = 1000
    config.write_text(f"window.AEQ_CONFIG = {json.dumps(limit)};\n", encoding="utf-8")
    report = run_probe(site, "try { await aeq.ready; } catch (e) {}\n"
                       "return { error_shown: document.getElementById('status').textContent };",
                       isolate=False)
    assert "is too large for the browser" in report["error_shown"], report
    assert not any(url.endswith(".onnx") for url in report["resources"])  # refused before loading


def test_file_url_says_to_serve_the_site(imagenet_case: tuple[Path, Reference]) -> None:
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="aeq-chromium-")
    try:
        flags = [f for f in FLAGS if not f.startswith("--remote-debugging")]
        done = subprocess.run([CHROMIUM, *flags, f"--user-data-dir={profile}",
                               "--virtual-time-budget=10000", "--dump-dom",
                               (imagenet_case[0] / "index.html").as_uri()],
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "must be served over http(s)" in done.stdout, done.stdout[:3000]
