"""The CUDA-graph runner's bookkeeping, checked on the CPU (the GPU runs are in test_cuda.py).

:class:`aeq_onnx.run.cuda_graph.GraphRunner` keeps fixed input/output buffers per batch size and
copies each call's batch into them; on a CPU session (no capture) the same buffers must give
exactly ``session.run``'s outputs, whatever the order of batch sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from aeq_onnx.errors import DeviceError, InputError
from aeq_onnx.run.cuda_graph import GraphRunner
from aeq_onnx.run.runtime import Explainer, cuda_usable, make_session

SCENES = Path(__file__).resolve().parent.parent / "fixtures/scenes/resnet_scenes.onnx"


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    return Explainer(SCENES, device="cpu")


def test_buffers_follow_every_call(explainer: Explainer) -> None:
    runner = GraphRunner(explainer.session, device="cpu")
    rng = np.random.default_rng(0)
    for n, target in ((2, -1), (1, 3), (2, 0), (1, -1)):
        x = rng.random((n, 3, 64, 64), dtype=np.float32)
        t = np.full(n, target, np.int64)
        got = runner.run({"target": t, "input": x})
        names = [o.name for o in explainer.session.get_outputs()]
        want = explainer.session.run(names, {"input": x, "target": t})
        assert list(got) == names
        for name, w in zip(names, want, strict=True):
            np.testing.assert_array_equal(got[name], w)
    assert sorted(runner._slots) == [1, 2]  # one set of buffers (one graph) per batch size


def test_dynamic_shapes_are_refused() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])],
                                                "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    with pytest.raises(DeviceError, match="static shapes after the batch axis"):
        GraphRunner(make_session(model, "cpu"), device="cpu")


def test_cpu_session_ignores_cuda_graph(explainer: Explainer) -> None:
    with pytest.warns(UserWarning, match="cuda_graph=True ignored"):
        exp = Explainer(explainer.model, device="cpu" if cuda_usable() else "auto",
                        cuda_graph=True)
    assert exp.graphs is None


def test_explain_on_device_is_refused_with_graphs(explainer: Explainer) -> None:
    exp = Explainer(explainer.model, device="cpu")
    exp.graphs = GraphRunner(exp.session, device="cpu")  # what cuda_graph=True sets on CUDA
    x = np.random.default_rng(1).random((1, 3, 64, 64), dtype=np.float32)
    np.testing.assert_array_equal(exp.explain(x).relevance, explainer.explain(x).relevance)
    with pytest.raises(InputError, match="not available with cuda_graph"):
        exp.explain_on_device(ort.OrtValue.ortvalue_from_numpy(x))

