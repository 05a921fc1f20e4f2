"""Shared fixtures for the pass tests: build small models from text, compare outputs with ORT."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import numpy_helper

BuildModel = Callable[..., onnx.ModelProto]
CheckSame = Callable[..., None]


def build_model(text: str, **weights: np.ndarray) -> onnx.ModelProto:
    """Parse ONNX text format and add the given arrays as initializers (float32 unless int)."""
    model = onnx.parser.parse_model(text)
    for name, value in weights.items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return model


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A single-threaded CPU session (the test machine is shared)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _random_feeds(model: onnx.ModelProto, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Random float inputs for every graph input; symbolic dims take `batch`."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        feeds[value.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def check_same_outputs(
    before: onnx.ModelProto, after: onnx.ModelProto, batches: Sequence[int] = (1, 3)
) -> None:
    """Same graph I/O names, an IR version ORT reads, and equal outputs on random inputs."""
    assert [i.name for i in after.graph.input] == [i.name for i in before.graph.input]
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    assert 3 <= after.ir_version <= 10
    old, new = _session(before), _session(after)
    for seed, batch in enumerate(batches):
        feeds = _random_feeds(before, batch, seed)
        for expected, actual in zip(old.run(None, feeds), new.run(None, feeds), strict=True):
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def op_types(model: onnx.ModelProto) -> list[str]:
    """The op types of the main graph, in order."""
    return [node.op_type for node in model.graph.node]


@pytest.fixture
def build() -> BuildModel:
    """`build(text, **weights)`: a model from ONNX text plus initializers."""
    return build_model


@pytest.fixture
def same_outputs() -> CheckSame:
    """`same_outputs(before, after, batches=(1, 3))`: assert the rewrite kept the outputs."""
    return check_same_outputs


@pytest.fixture
def ops() -> Callable[[onnx.ModelProto], list[str]]:
    """`ops(model)`: the main graph's op types."""
    return op_types


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator for weights."""
    return np.random.default_rng(0)
