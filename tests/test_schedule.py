"""The explainer's schedule in onnxruntime: work that needs only the forward pass (masks, mask
products, layout copies of the activations) runs when the backward pass reaches its layer, so
peak memory follows the largest layer, not the depth (``emit.zero_after`` and ``emit.late`` in the
rules; measured with ``benchmarks/liveness.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from aeq_onnx import compile_explainer
from aeq_onnx.ir.emit import Emitter, zero_after
from benchmarks import liveness
from tests.helpers import IR_VERSION, Net


def _net(widths: list[int]) -> onnx.ModelProto:
    """conv3x3+ReLU per width (a 2x2 max pool after the second), then GAP -> Gemm."""
    net = Net((3, 32, 32))
    for i, width in enumerate(widths):
        net.conv(width, 3, pads=1)
        net.relu()
        if i == 1:
            net.op("MaxPool", [net.cur], kernel_shape=[2, 2], strides=[2, 2])
    return net.head(5)


def _peaks(widths: list[int], tmp: Path, method: str) -> tuple[int, int]:
    """Liveness peak (bytes) of the explainer and the model's activation bytes, batch 2."""
    model = _net(widths)
    work = tmp / "-".join(map(str, widths))
    work.mkdir()
    onnx.save(compile_explainer(model, method=method), work / "explainer.onnx")
    onnx.save(model, work / "model.onnx")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    feeds = {"input": x, "target": np.full(2, -1, np.int64)}
    explainer = liveness.measure(work / "explainer.onnx", feeds, work)
    order, _ = liveness.run_profiled(work / "model.onnx", {"input": x}, work)
    return explainer.peak_bytes, sum(size for _, size in order)


@pytest.mark.parametrize("method", ["ae", "lrp-zplus"])  # LRP-ε keeps z and x: 2.0x here
def test_extra_layers_add_only_their_activations_to_the_peak(tmp_path: Path,
                                                             method: str) -> None:
    """Four more conv layers raise the explainer's live-tensor peak by at most 1.2x their
    activations (kept for the backward pass): 0.375x for AE, 0.875x for LRP-z⁺. With every
    layer's masks, denominators and layout copies hoisted next to the forward pass
    (onnxruntime's default order without the ordering edges) they raised it by 4.0x / 2.0x
    here, and ResNet-50's batch-1 AE peak was 154 MB instead of 43 MB."""
    shallow, shallow_acts = _peaks([16, 16, 32, 32], tmp_path, method)
    deep, deep_acts = _peaks([16, 16, 32, 32, 32, 32, 32, 32], tmp_path, method)
    assert deep - shallow <= 1.2 * (deep_acts - shallow_acts), (shallow, deep, deep_acts,
                                                                shallow_acts)


def test_liveness_counts_a_chain_and_a_kept_tensor() -> None:
    """The liveness walk on a hand-made order: a tensor kept for a late reader stays counted."""
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="A"),
             helper.make_node("Relu", ["a"], ["b"], name="B"),
             helper.make_node("Relu", ["b"], ["c"], name="C"),
             helper.make_node("Add", ["a", "c"], ["y"], name="D")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [4])],
                              [helper.make_tensor_value_info("y", 1, [4])])
    got = liveness.peak([("A", 10), ("B", 20), ("C", 40), ("D", 80)], graph)
    assert (got.peak_bytes, got.position) == (10 + 40 + 80, 3)  # a and c (read by D) + y
    assert liveness.peak([("A", 10), ("B", 20), ("C", 40), ("D", 1)], graph).peak_bytes == 70


@pytest.mark.parametrize("values", [[0.0], [-0.0], [3.5, -2.0], [-1e30], [np.inf, -np.inf],
                                    [1e-45, 0.0]],
                         ids=["zero", "minus-zero", "mixed", "large-negative", "infinities",
                              "subnormal"])
def test_zero_after_is_plus_zero_for_any_value_without_nan(values: list[float]) -> None:
    """The ordering edge changes no value: ``x > zero_after(s)`` is ``x > 0``."""
    em = Emitter(17, taken={"s"})
    out = zero_after(em, "s")
    graph = helper.make_graph(em.nodes, "g",
                              [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                              em.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = IR_VERSION
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    s = np.resize(np.asarray(values, np.float32), (2, 3))
    (zero,) = session.run(None, {"s": s})
    assert zero.shape == () and zero == 0.0 and not np.signbit(zero)
