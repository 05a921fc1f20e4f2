"""The explainer's forward of a QDQ model is the deployed model *as onnxruntime optimises it*:
the same fused integer kernels (QLinearConv, QGemm, ...) in the part that computes the logits,
so its logits equal the deployed model's at any batch size (docs/deployed.md).

Found on torchvision MobileNet-V2 QDQ at 224x224: at a batch of 2 the explainer's logits
differed from the deployed model's by one quantization step of the logits (1.7e-3), because
onnxruntime ran the explainer's first Conv and last Gemm in float32 over dequantized values
(unfused: the target's ArgMax was a second reader of the final DequantizeLinear, and the
copy's first QuantizeLinear, moved in front of its Reshape by onnxruntime's QDQ propagation,
was merged with the model's own). At 32x32 the float and integer kernels happen to agree on
the values, so the small fixtures check the cause itself: the optimised op counts.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import aeq_onnx
from fixtures.deployed import cached
from tests.helpers import random_input

SIZE = 32
LEVELS = {"extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
QDQ = [pytest.param(a, v, id=f"{a}-{v}") for a in ("resnet", "mobilenet")
       for v in ("qdq", "qdq-pt", "qdq-uint8")]


def session(model: onnx.ModelProto, level: str = "all",
            optimized: Path | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = LEVELS[level]
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def forward_ops(model: onnx.ModelProto, output: str) -> Counter[str]:
    """Op types of the nodes ``output`` depends on in onnxruntime's optimised graph
    (EXTENDED: the QDQ fusions, still serialisable)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "optimized.onnx"
        session(model, "extended", path)
        graph = onnx.load(str(path)).graph
    made = {o: n for n in graph.node for o in n.output}
    seen: dict[str, onnx.NodeProto] = {}
    pending = [output]
    while pending:
        node = made.get(pending.pop())
        if node is not None and node.name not in seen:
            seen[node.name] = node
            pending.extend(node.input)
    return Counter(n.op_type for n in seen.values() if n.name != "aeq/out/logits")


@pytest.mark.parametrize("arch,variant", QDQ)
def test_the_explainers_forward_fuses_as_the_deployed_model(arch: str, variant: str) -> None:
    model = onnx.load(str(cached(arch, variant, SIZE)))
    explainer = aeq_onnx.compile_explainer(model)
    want = forward_ops(model, model.graph.output[0].name)
    got = forward_ops(explainer, "logits")
    assert want["QGemm"] == 1 and want["QLinearConv"] > 0
    assert got == want


@pytest.mark.parametrize("level", sorted(LEVELS))
@pytest.mark.parametrize("arch,variant", QDQ)
def test_qdq_logits_are_the_deployed_models_at_any_batch(arch: str, variant: str,
                                                         level: str) -> None:
    model = onnx.load(str(cached(arch, variant, SIZE)))
    plain = session(model, level)
    sess = session(aeq_onnx.compile_explainer(model), level)
    data = next(i.name for i in sess.get_inputs() if i.name != "target")
    for size in (1, 2, 3):
        x = random_input((3, SIZE, SIZE), batch=size, seed=7)
        want = plain.run(None, {plain.get_inputs()[0].name: x})[0]
        got = sess.run(["logits", "target_class"],
                       {data: x, "target": np.full(size, -1, np.int64)})
        np.testing.assert_array_equal(got[0], want)
        np.testing.assert_array_equal(got[1], want.argmax(axis=1))
