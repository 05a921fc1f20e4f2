"""Weight-inputs pass: drop graph inputs backed by initializers (IR < 4 lists weights as inputs)."""

from __future__ import annotations

import onnx

from aeq_onnx.converters._graph_utils import copy_model, set_ir_version


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove graph inputs that only name an initializer, so weights are constants, not inputs."""
    weights = {t.name for t in model.graph.initializer}
    if not any(i.name in weights for i in model.graph.input):
        return model
    model = copy_model(model)
    kept = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.ir_version = max(model.ir_version, 4)
    return set_ir_version(model)
