"""strip_identity: Identity and inference Dropout vanish; graph output names stay; outputs equal."""

from __future__ import annotations

import numpy as np
import pytest

from aeq_onnx.converters import strip_identity

HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'

REMOVED = {
    "identity-in-the-middle": """g (float[N, 3] x) => (float[N, 3] y) {
          a = Relu(x)
          b = Identity(a)
          y = Sigmoid(b)
        }""",
    "identity-chain": """g (float[N, 3] x) => (float[N, 3] y) {
          a = Relu(x)
          b = Identity(a)
          c = Identity(b)
          y = Add(c, b)
        }""",
    "dropout-with-ratio": """g (float[N, 3] x) => (float[N, 3] y) {
          a = Relu(x)
          b = Dropout(a, ratio)
          y = Sigmoid(b)
        }""",
    "dropout-training-false-unused-mask": """g (float[N, 3] x) => (float[N, 3] y) {
          a = Relu(x)
          b, mask = Dropout(a, ratio, off)
          y = Sigmoid(b)
        }""",
    "identity-is-graph-output": """g (float[N, 3] x) => (float[N, 3] y) {
          a = Relu(x)
          y = Identity(a)
        }""",
    "dropout-is-graph-output-producer-read-elsewhere": """g (float[N, 3] x)
        => (float[N, 3] y, float[N, 3] z) {
          a = Relu(x)
          y = Dropout(a)
          z = Sigmoid(a)
        }""",
}
WEIGHTS = {"ratio": np.array(0.5, np.float32), "off": np.array(False)}


@pytest.mark.parametrize("graph", REMOVED.values(), ids=REMOVED.keys())
def test_passthrough_nodes_are_removed(build, same_outputs, ops, graph) -> None:
    """No Identity/Dropout left and outputs equal (graph output names checked too)."""
    model = build(HEAD + graph, **{k: v for k, v in WEIGHTS.items() if k in graph})
    stripped = strip_identity.run(model)
    assert not {"Identity", "Dropout"} & set(ops(stripped))
    same_outputs(model, stripped)


KEPT = {
    "dropout-mask-used": """g (float[N, 3] x) => (float[N, 3] y, bool[N, 3] mask) {
          a = Relu(x)
          y, mask = Dropout(a)
        }""",
    "identity-of-graph-input-to-output": """g (float[N, 3] x) => (float[N, 3] y) {
          y = Identity(x)
        }""",
    "identity-between-two-graph-outputs": """g (float[N, 3] x) => (float[N, 3] a, float[N, 3] y) {
          a = Relu(x)
          y = Identity(a)
        }""",
}


@pytest.mark.parametrize("graph", KEPT.values(), ids=KEPT.keys())
def test_passthrough_that_must_stay(build, same_outputs, ops, graph) -> None:
    """A used Dropout mask, or an output name that could not be kept otherwise: node stays."""
    model = build(HEAD + graph)
    result = strip_identity.run(model)
    assert ops(result) == ops(model)
    same_outputs(model, result)


def test_producer_is_renamed_for_graph_output(build) -> None:
    """When the removed node wrote a graph output, its producer now writes that name."""
    model = build(HEAD + REMOVED["identity-is-graph-output"])
    stripped = strip_identity.run(model)
    assert [(n.op_type, list(n.output)) for n in stripped.graph.node] == [("Relu", ["y"])]
