"""The plain forward pass of the audited model, up to its logits, for the black-box parts of an
audit: choosing targets, insertion/deletion curves and RISE.

Built from the canonical graph the compiler starts from (:func:`aeq_onnx.compile.prepare`), cut
at the logits (:func:`aeq_onnx.ir.planning.find_logits`: a final Softmax is left out), so scores
are the same logits the explainers report.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.audit.metrics.faithfulness import softmax
from aeq_onnx.compile.prepare import prepare
from aeq_onnx.load import LoadedModel
from aeq_onnx.render.presets import Layout
from aeq_onnx.run.runtime import Device, make_session

IR_VERSION = 10


def logits_model(model: onnx.ModelProto, output: str | None = None) -> onnx.ModelProto:
    """``model`` (already loaded safely) cut at its logits; one output named ``logits``."""
    prepared = prepare(LoadedModel(model, sha256="", path=None), output=output, at_logits=True)
    name = prepared.plan.logits
    graph = gs.import_onnx(prepared.view.model)
    tensor = graph.tensors()[name]
    graph.outputs = [tensor]
    graph.cleanup()
    tensor.name = "logits" if "logits" not in graph.tensors() else tensor.name
    proto = gs.export_onnx(graph)
    proto.ir_version = min(proto.ir_version, IR_VERSION)
    return proto


class Forward:
    """Logits and probabilities of the model for batches in NCHW (the metrics' layout)."""

    def __init__(self, model: onnx.ModelProto, layout: Layout, device: Device = "cpu",
                 threads: int | None = None, output: str | None = None) -> None:
        self.model = logits_model(model, output)
        self.session = make_session(self.model, device, threads)
        self.input = self.session.get_inputs()[0].name
        self.layout = layout

    def logits(self, batch_nchw: np.ndarray) -> np.ndarray:
        """Logits ``(B, K)`` of a float32 NCHW batch."""
        x = batch_nchw if self.layout == "NCHW" else batch_nchw.transpose(0, 2, 3, 1)
        out = self.session.run(None, {self.input: np.ascontiguousarray(x, np.float32)})[0]
        return np.asarray(out).reshape(len(batch_nchw), -1)

    def probabilities(self, batch_nchw: np.ndarray) -> np.ndarray:
        """Softmax of the logits ``(B, K)``."""
        return softmax(self.logits(batch_nchw))

    @property
    def predict(self) -> Callable[[np.ndarray], np.ndarray]:
        """The predictor the metrics and RISE take."""
        return self.probabilities


def to_nchw(samples: np.ndarray, layout: Layout) -> np.ndarray:
    """A batch in the model's layout as NCHW."""
    return samples if layout == "NCHW" else samples.transpose(0, 3, 1, 2)
