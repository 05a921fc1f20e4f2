"""Tiny models built inline for the core's contract and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def small_cnn(middle: list[tuple[str, str]] | None = None, classes: int = 4,
              seed: int = 0) -> onnx.ModelProto:
    """conv3x3(3->4) -> [middle ops] -> relu -> GlobalAveragePool -> Flatten -> Gemm(4->classes).

    ``middle`` lists ``(op_type, node_name)`` of unary ops inserted after the conv.
    """
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=(classes, 4)).astype(np.float32), "fc"),
    ]
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])]
    last = "c"
    for op, name in middle or []:
        nodes.append(helper.make_node(op, [last], [name + "_out"], name=name))
        last = name + "_out"
    nodes += [
        helper.make_node("Relu", [last], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc"], ["out"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", classes])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def audit_dataset(root: Path, images: int, size: int = 8) -> dict[str, Path]:
    """``small_cnn()`` and ``images`` seeded random photos with a rectangle mask each, under
    ``root`` (``model.onnx``, ``img/imK.png``, ``masks/imK.png``) for the audit tests."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    (root / "masks").mkdir()
    for k in range(images):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            root / "img" / f"im{k}.png")
        mask = np.zeros((size, size), np.uint8)
        mask[1 + k % 3:5, 2:6] = 255
        Image.fromarray(mask).save(root / "masks" / f"im{k}.png")
    onnx.save(small_cnn(), root / "model.onnx")
    return {"model": root / "model.onnx", "img": root / "img", "masks": root / "masks",
            "root": root}
