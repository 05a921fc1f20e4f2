"""opset: default-domain opsets below 17 are converted up to 17; 17 and later are left alone."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from aeq_onnx.converters import opset
from aeq_onnx.converters._graph_utils import default_opset
from aeq_onnx.errors import ConversionError

W = np.random.default_rng(4).standard_normal((4, 3, 3, 3)).astype(np.float32)

OLD = {
    "opset11-squeeze-reduce-softmax": """<ir_version: 6, opset_import: ["" : 11]>
        g (float[N, 3, 8, 8] x) => (float[N, 4] y) {
          c = Conv<kernel_shape=[3, 3], pads=[1, 1, 1, 1]>(x, w)
          m = ReduceMean<axes=[2, 3], keepdims=1>(c)
          s = Squeeze<axes=[2, 3]>(m)
          y = Softmax<axis=1>(s)
        }""",
    "opset13-split-pad": """<ir_version: 7, opset_import: ["" : 13]>
        g (float[N, 3, 8, 8] x) => (float[N, 2, ?, ?] y) {
          c = Conv<kernel_shape=[3, 3]>(x, w)
          a, b = Split<axis=1>(c, halves)
          p = Pad(a, pads)
          y = Add(p, p)
        }""",
}
WEIGHTS = {
    "w": W,
    "halves": np.array([2, 2], np.int64),
    "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
}


@pytest.mark.parametrize("text", OLD.values(), ids=OLD.keys())
def test_old_opset_is_converted_to_17(build, same_outputs, text) -> None:
    """Opset import becomes 17, IR the smallest for it (8), outputs unchanged."""
    model = build(text, **{k: v for k, v in WEIGHTS.items() if k in text})
    converted = opset.run(model)
    assert default_opset(converted) == 17
    assert converted.ir_version == 8
    onnx.checker.check_model(converted)
    same_outputs(model, converted)


@pytest.mark.parametrize("version", [17, 18, 21], ids=lambda v: f"opset{v}")
def test_opset_17_or_newer_is_untouched(build, version) -> None:
    """The graph and opset stay; only the IR version is set (smallest for that opset)."""
    text = f"""<ir_version: 10, opset_import: ["" : {version}]>
        g (float[N, 3] x) => (float[N, 3] y) {{
          y = Relu(x)
        }}"""
    model = build(text)
    result = opset.run(model)
    assert default_opset(result) == version
    assert result.graph == model.graph
    assert result.ir_version == onnx.helper.find_min_ir_version_for(list(model.opset_import))
    assert model.ir_version == 10  # the caller's proto is not modified


def test_conversion_failure_names_both_opsets(build) -> None:
    """A node the version converter cannot handle: ConversionError naming opset 11 and 17."""
    text = """<ir_version: 6, opset_import: ["" : 11]>
        g (float[N, 3] x) => (float[N, 3] y) {
          y = NoSuchOp(x)
        }"""
    with pytest.raises(ConversionError, match=r"opset 11 to opset 17") as info:
        opset.run(build(text))
    assert "\n" not in str(info.value)
