"""Models, photos and Python references for the web and Node tests.

``tiny_imagenet`` is a small CNN built inline with ImageNet's 1000 classes and a 48x48 NCHW input
(so the ``imagenet`` preset resizes to 54 and centre-crops, as for a real model); ``keras_mobile``
is the Keras NHWC model of ``fixtures/keras_models.py`` (tf2onnx, 32x32, 10 classes), explained
with the ``unit`` preset. :func:`python_reference` is what Python onnxruntime says for a photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import aeq_onnx
from aeq_onnx.render.imaging import load_image
from aeq_onnx.render.presets import Preset, get_preset, input_spec, preprocess

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "fixtures" / "images"
ORT_WEB = ROOT / "web" / "node_modules" / "onnxruntime-web" / "package.json"
NODE_EXAMPLE = ROOT / "examples" / "node"
#: Relevance from another runtime must be within this fraction of max |R| of Python's.
REL_TOL = 1e-4


def tiny_imagenet(seed: int = 0, pool: str = "MaxPool") -> onnx.ModelProto:
    """conv3x3(3->8)+relu -> ``pool`` 2x2 -> conv3x3(8->8)+relu -> GAP -> Gemm(8->1000)."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)
             for name, shape in (("w1", (8, 3, 3, 3)), ("b1", (8,)), ("w2", (8, 8, 3, 3)),
                                 ("b2", (8,)), ("fc", (1000, 8)), ("fcb", (1000,)))]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node(pool, ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_imagenet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 48, 48])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def tiny_imagenet_explainer(path: Path, pool: str = "MaxPool") -> Path:
    """The tiny model's explainer with the ``imagenet`` preset stored, saved at ``path``."""
    model = aeq_onnx.store_preset(aeq_onnx.compile_explainer(tiny_imagenet(pool=pool)),
                                  "imagenet")
    onnx.save(model, path)
    return path


def keras_mobile_explainer(path: Path) -> Path:
    """The Keras NHWC ``mobile`` model's explainer (``unit`` preset stored) at ``path``."""
    from fixtures import keras_models

    keras_models.load_triton_first()
    source = keras_models.export("mobile", 13)
    model = aeq_onnx.store_preset(aeq_onnx.compile_explainer(str(source)), "unit")
    onnx.save(model, path)
    return path


@dataclass
class Reference:
    """Python's answer for one photo: input tensor, logits, top-5 and relevance per class."""

    preset: Preset
    tensor: np.ndarray
    photo: object
    logits: np.ndarray
    top5: list[int]
    relevance: dict[int, np.ndarray]


def python_reference(explainer: Path, photo: Path, classes: int = 2) -> Reference:
    """Preprocess ``photo`` with the explainer's preset and explain its ``classes`` best classes
    with Python onnxruntime on the CPU."""
    ex = aeq_onnx.Explainer(explainer, device="cpu")
    preset = get_preset(ex.metadata["preset"])
    spec = input_spec(list(ex._input.shape), preset)
    x, image = preprocess(load_image(photo), preset, spec)
    first = ex.explain(x[None], target=-1)
    order = np.argsort(-first.logits[0], kind="stable")
    relevance = {int(order[0]): first.relevance[0]}
    for k in order[1:classes]:
        relevance[int(k)] = ex.explain(x[None], target=int(k)).relevance[0]
    return Reference(preset, x, image, first.logits[0], order[:5].tolist(), relevance)


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want|."""
    return float(np.abs(got - want).max() / np.abs(want).max())
