"""fold_pad: a zero spatial Pad disappears into its Conv readers' pads; outputs unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from aeq_onnx.converters import fold_pad

W = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
W2 = np.random.default_rng(2).standard_normal((5, 3, 1, 1)).astype(np.float32)
B = np.arange(4, dtype=np.float32)


def _pads(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _conv_pads(model: onnx.ModelProto) -> list[list[int]]:
    """The pads attribute of each Conv (zeros when absent)."""
    result = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            pads = next((list(a.ints) for a in node.attribute if a.name == "pads"), [0] * 4)
            result.append(pads)
    return result


FOLDS = {
    "opset17-pads-input": (
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, 4, ?, ?] y) {
          p = Pad(x, pads)
          y = Conv<kernel_shape=[3, 3]>(p, w, b)
        }""",
        {"pads": _pads(0, 0, 1, 2, 0, 0, 3, 1), "w": W, "b": B},
        [[1, 2, 3, 1]],
    ),
    "adds-to-existing-conv-pads": (
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, 4, ?, ?] y) {
          p = Pad(x, pads, zero)
          y = Conv<kernel_shape=[3, 3], pads=[1, 1, 1, 1], auto_pad="NOTSET">(p, w, b)
        }""",
        {"pads": _pads(0, 0, 2, 2, 0, 0, 2, 2), "zero": np.array(0, np.float32), "w": W, "b": B},
        [[3, 3, 3, 3]],
    ),
    "opset18-axes-input": (
        """<ir_version: 8, opset_import: ["" : 18]>
        g (float[N, 3, 8, 8] x) => (float[N, 4, ?, ?] y) {
          p = Pad(x, pads, , axes)
          y = Conv<kernel_shape=[3, 3], strides=[2, 2]>(p, w)
        }""",
        {"pads": _pads(1, 0, 2, 1), "axes": _pads(-1, 2), "w": W},
        [[0, 1, 1, 2]],
    ),
    "opset10-attribute-form": (
        """<ir_version: 5, opset_import: ["" : 10]>
        g (float[N, 3, 8, 8] x) => (float[N, 4, ?, ?] y) {
          p = Pad<mode="constant", pads=[0, 0, 1, 1, 0, 0, 1, 1], value=0.0>(x)
          y = Conv<kernel_shape=[3, 3]>(p, w, b)
        }""",
        {"w": W, "b": B},
        [[1, 1, 1, 1]],
    ),
    "two-conv-readers": (
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, 4, ?, ?] y, float[N, 5, ?, ?] z) {
          p = Pad(x, pads)
          y = Conv<kernel_shape=[3, 3]>(p, w, b)
          z = Conv<kernel_shape=[1, 1], pads=[1, 0, 0, 1]>(p, w2)
        }""",
        {"pads": _pads(0, 0, 1, 1, 0, 0, 1, 1), "w": W, "b": B, "w2": W2},
        [[1, 1, 1, 1], [2, 1, 1, 2]],
    ),
}


@pytest.mark.parametrize(("text", "weights", "expected"), FOLDS.values(), ids=FOLDS.keys())
def test_pad_folds_into_conv(build, same_outputs, ops, text, weights, expected) -> None:
    """The Pad node and its constants are gone, the Conv pads grew, the outputs stay."""
    model = build(text, **weights)
    folded = fold_pad.run(model)
    assert "Pad" not in ops(folded)
    assert _conv_pads(folded) == expected
    assert all(node.input[0] == "x" for node in folded.graph.node)
    assert not {"pads", "axes", "zero"} & {t.name for t in folded.graph.initializer}
    assert all(a.name != "auto_pad" for n in folded.graph.node for a in n.attribute)
    same_outputs(model, folded)


KEEPS = {
    "nonzero-value": ("p = Pad(x, pads, one)", "Conv<kernel_shape=[3, 3]>(p, w)"),
    "reflect-mode": ('p = Pad<mode="reflect">(x, pads)', "Conv<kernel_shape=[3, 3]>(p, w)"),
    "pads-channel-axis": ("p = Pad(x, cpads)", "Conv<kernel_shape=[3, 3]>(p, w)"),
    "negative-pads": ("p = Pad(x, neg)", "Conv<kernel_shape=[3, 3]>(p, w)"),
    "reader-not-conv": ("p = Pad(x, pads)", "Relu(p)"),
    "conv-auto-pad-same": (
        "p = Pad(x, pads)",
        'Conv<kernel_shape=[3, 3], auto_pad="SAME_UPPER">(p, w)',
    ),
}


@pytest.mark.parametrize(("pad", "reader"), KEEPS.values(), ids=KEEPS.keys())
def test_pad_that_cannot_fold_stays(build, same_outputs, ops, pad, reader) -> None:
    """Non-zero, non-constant-mode, non-spatial or negative pads, or other readers: untouched."""
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, ?, ?, ?] y) {{
          {pad}
          y = {reader}
        }}"""
    weights = {
        "pads": _pads(0, 0, 1, 1, 0, 0, 1, 1),
        "cpads": _pads(0, 1, 1, 1, 0, 0, 1, 1),
        "neg": _pads(0, 0, -1, 0, 0, 0, 0, 0),
        "one": np.array(1.0, np.float32),
        "w": W if "cpads" not in pad else np.ones((4, 4, 3, 3), np.float32),
    }
    model = build(text, **weights)
    result = fold_pad.run(model)
    assert ops(result) == ops(model)
    same_outputs(model, result)


def test_pad_that_is_a_graph_output_stays(build, same_outputs, ops) -> None:
    """A Pad whose result is also a graph output keeps producing it."""
    text = """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, 3, 10, 10] p, float[N, 4, 8, 8] y) {
          p = Pad(x, pads)
          y = Conv<kernel_shape=[3, 3]>(p, w)
        }"""
    model = build(text, pads=_pads(0, 0, 1, 1, 0, 0, 1, 1), w=W)
    result = fold_pad.run(model)
    assert ops(result) == ["Pad", "Conv"]
    same_outputs(model, result)
