"""examples/node/explain.js (onnxruntime-node) against Python onnxruntime on a bundled photo.

The Node example decodes the JPEG with sharp, preprocesses and draws with aeq-core.js, runs the
explainer with onnxruntime-node and writes the relevance .npy, the input tensor and the heatmap
and overlay PNGs. They must equal Python's: the tensor bit for bit, the relevance within 1e-4 of
max |R|, the PNGs' decoded pixels byte for byte with Python's heatmap_rgb / overlay. `make test`
installs the example's packages (npm ci --ignore-scripts); without them this is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from web_models import (
    NODE_EXAMPLE,
    PHOTOS,
    REL_TOL,
    keras_mobile_explainer,
    python_reference,
    rel_error,
    tiny_imagenet_explainer,
)

from aeq_onnx.render.imaging import heatmap_rgb, overlay

NODE = shutil.which("node")
pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed (Node 20+)"),
    pytest.mark.skipif(not (NODE_EXAMPLE / "node_modules" / "onnxruntime-node").is_dir(),
                       reason="examples/node packages are not installed (make npm)"),
]
PHOTO = PHOTOS / "chelsea.jpg"


def _node(explainer: Path, out: Path, *extra: str) -> dict:
    assert NODE is not None
    done = subprocess.run([NODE, str(NODE_EXAMPLE / "explain.js"), str(explainer), str(PHOTO),
                           "-o", str(out), "--json", "--save-input", *extra],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _keras(tmp: Path) -> Path:
    if importlib.util.find_spec("tf2onnx") is None:
        pytest.skip("the keras extra (tensorflow-cpu, tf2onnx) is not installed")
    return keras_mobile_explainer(tmp / "mobile.explainer.onnx")


@pytest.mark.parametrize("model", ["tiny-imagenet-nchw", "keras-nhwc-unit"])
def test_node_example_equals_python(model: str, tmp_path: Path) -> None:
    explainer = (tiny_imagenet_explainer(tmp_path / "tiny.explainer.onnx")
                 if model.startswith("tiny") else _keras(tmp_path))
    ref = python_reference(explainer, PHOTO)
    layout = "NCHW" if ref.tensor.shape[0] == 3 else "NHWC"
    for rank, cls in enumerate(ref.top5[:2]):
        report = _node(explainer, tmp_path / "out", *(["--target", str(cls)] if rank else []))
        [result] = report["results"]
        assert result["target"] == cls
        assert [c["index"] for c in result["top5"]] == ref.top5
        files = result["files"]
        tensor = np.load(files["npy"].replace(".npy", ".input.npy"))
        assert np.array_equal(tensor, ref.tensor)
        relevance = np.load(files["npy"])
        err = rel_error(relevance, ref.relevance[cls])
        print(f"{model} class {cls}: node vs python relevance {err:.3g} of max |R|")
        assert err <= REL_TOL
        heat = np.asarray(Image.open(files["heatmap"]))
        assert np.array_equal(heat, heatmap_rgb(ref.relevance[cls], layout))  # type: ignore[arg-type]
        over = np.asarray(Image.open(files["overlay"]))
        assert np.array_equal(over, np.asarray(overlay(ref.photo, ref.relevance[cls],
                                                       layout)))  # type: ignore[arg-type]


def test_node_example_reports_bad_input(tmp_path: Path) -> None:
    assert NODE is not None
    (tmp_path / "not.onnx").write_bytes(b"\x08\x07garbage")
    done = subprocess.run([NODE, str(NODE_EXAMPLE / "explain.js"), str(tmp_path / "not.onnx"),
                           str(PHOTO)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and done.stderr.startswith("error: ")
