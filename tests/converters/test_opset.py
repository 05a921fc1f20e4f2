"""opset: default-domain opsets below 17 are converted up to 17; 17 and later are left alone."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from aeq_onnx.converters import opset
from aeq_onnx.converters._graph_utils import default_opset
from aeq_onnx.errors import ConversionError
from tests.helpers import session

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


X4 = "float[N, 3, 4, 4] x"
#: ONNX Model Zoo-era forms (opsets 4-9) the opset pass upgrades, each run by onnxruntime before
#: and after: Upsample with its scales attribute (7-8), BatchNormalization with spatial=1 (7-8),
#: Dropout with a mask output nobody reads, Gemm with transA/transB and a broadcast bias,
#: Reshape from a Constant node (and the shape attribute of opset 4), Sum, a 2-D Softmax.
#: name: (opset, "inputs => outputs", body, weights)
ZOO = {
    "upsample7-nearest": (7, "(X4) => (float[N, 3, 8, 8] y)",
                          'y = Upsample<mode="nearest", scales=[1.0, 1.0, 2.0, 2.0]>(x)', ()),
    "upsample8-linear": (8, "(X4) => (float[N, 3, 8, 8] y)",
                         'y = Upsample<mode="linear", scales=[1.0, 1.0, 2.0, 2.0]>(x)', ()),
    "batchnorm7-spatial1": (7, "(X4) => (float[N, 3, 4, 4] y)",
                            "y = BatchNormalization<spatial=1, epsilon=1e-3>(x, s, b, m, v)",
                            ("s", "b", "m", "v")),
    "batchnorm8-spatial1": (8, "(X4) => (float[N, 3, 4, 4] y)",
                            "y = BatchNormalization<spatial=1>(x, s, b, m, v)",
                            ("s", "b", "m", "v")),
    "dropout7-mask": (7, "(X4) => (float[N, 3, 4, 4] y)", "y, mask = Dropout<ratio=0.3>(x)", ()),
    "dropout9-mask": (9, "(X4) => (float[N, 3, 4, 4] y)", "y, mask = Dropout(x)", ()),
    "gemm7-transB-bias": (7, "(float[N, 5] f) => (float[N, 4] y)",
                          "y = Gemm<transB=1, alpha=0.5, beta=2.0>(f, w45, b4)", ("w45", "b4")),
    "gemm9-transA-bias-row": (9, "(float[5, N] f) => (float[N, 4] y)",
                              "y = Gemm<transA=1>(f, w54, b14)", ("w54", "b14")),
    "reshape7-constant": (7, "(X4) => (float[N, 48] y)",
                          "s = Constant<value=int64[2] {0, 48}>()\n y = Reshape(x, s)", ()),
    "reshape9-constant": (9, "(X4) => (float[N, 3, 16] y)",
                          "s = Constant<value=int64[3] {0, 3, -1}>()\n y = Reshape(x, s)", ()),
    "reshape4-attribute": (4, "(X4) => (float[N, 48] y)", "y = Reshape<shape=[0, 48]>(x)", ()),
    "sum6": (6, "(X4) => (float[N, 3, 4, 4] y)", "a = Relu(x)\n y = Sum(x, a, a)", ()),
    "sum8-broadcast": (8, "(X4) => (float[N, 3, 4, 4] y)", "a = Relu(x)\n y = Sum(x, a, r)",
                       ("r",)),
    "softmax7-2d": (7, "(float[N, 5] f) => (float[N, 5] y)", "y = Softmax<axis=1>(f)", ()),
    "softmax9-2d": (9, "(float[N, 5] f) => (float[N, 5] y)", "y = Softmax(f)", ()),
}
RNG = np.random.default_rng(7)
ZOO_WEIGHTS = {
    "s": RNG.uniform(0.5, 1.5, 3), "b": RNG.standard_normal(3), "m": RNG.standard_normal(3),
    "v": RNG.uniform(0.5, 1.5, 3), "w45": RNG.standard_normal((4, 5)),
    "w54": RNG.standard_normal((5, 4)), "b4": RNG.standard_normal(4),
    "b14": RNG.standard_normal((1, 4)), "r": RNG.standard_normal((3, 1, 4)),
}


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_era_forms_keep_their_outputs(build, same_outputs, name: str) -> None:
    """Each old form converts to opset 17 with the same outputs (onnxruntime before/after)."""
    version, io, body, weights = ZOO[name]
    text = (f'<ir_version: 4, opset_import: ["" : {version}]>\n'
            f"g {io.replace('X4', X4)} {{\n {body}\n}}")
    model = build(text, **{k: ZOO_WEIGHTS[k].astype(np.float32) for k in weights})
    converted = opset.run(model)
    assert default_opset(converted) == 17
    onnx.checker.check_model(converted, full_check=True)
    same_outputs(model, converted)


def test_read_dropout_mask_stays_float(build) -> None:
    """An opset-9 Dropout mask that is a graph output: opset 10 made masks bool; the pass
    casts the converted mask back to the declared float type (onnxruntime would refuse the
    float declaration on a bool output). ``y`` is unchanged; the mask carries nothing at
    inference and its values differ: onnxruntime's opset 7-9 kernel returns zeros, the
    converted Dropout all ones (keep every unit)."""
    text = f"""<ir_version: 4, opset_import: ["" : 9]>
        g ({X4}) => (float[N, 3, 4, 4] y, float[N, 3, 4, 4] mask) {{
          y, mask = Dropout<ratio=0.5>(x)
        }}"""
    model = build(text)
    converted = opset.run(model)
    onnx.checker.check_model(converted, full_check=True)
    assert [n.op_type for n in converted.graph.node][-2:] == ["Dropout", "Cast"]
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    (y0, m0), (y1, m1) = (session(m).run(None, {"x": x}) for m in (model, converted))
    np.testing.assert_array_equal(y1, y0)
    assert m1.dtype == m0.dtype == np.float32 and m1.shape == m0.shape
    np.testing.assert_array_equal(m1, np.ones_like(m1))



GEMM6 = """<ir_version: 4, opset_import: ["" : 6]>
    g (float[{batch}, 5] f) => (float[{batch}, 4] y) {{
      y = Gemm<transB=1, broadcast=1>(f, w45, b4)
    }}"""


def test_gemm6_broadcast_bias(build) -> None:
    """Gemm-6's ``broadcast=1`` bias (static batch, as opset-6 files have): converted to
    opset 17 with the same result, checked against numpy (onnxruntime has no Gemm-6 kernel)."""
    w, b = ZOO_WEIGHTS["w45"].astype(np.float32), ZOO_WEIGHTS["b4"].astype(np.float32)
    converted = opset.run(build(GEMM6.format(batch=2), w45=w, b4=b))
    f = RNG.standard_normal((2, 5)).astype(np.float32)
    got = session(converted).run(None, {"f": f})[0]
    np.testing.assert_allclose(got, f @ w.T + b, rtol=1e-5, atol=1e-5)


def test_symbolic_batch_gemm6_is_a_conversion_error(build) -> None:
    """Known limit: onnx's Gemm 6->7 adapter needs static dims to check the old broadcast;
    with a symbolic batch it is refused with one line naming the conversion."""
    model = build(GEMM6.format(batch="N"), w45=ZOO_WEIGHTS["w45"].astype(np.float32),
                  b4=ZOO_WEIGHTS["b4"].astype(np.float32))
    with pytest.raises(ConversionError, match=r"from opset 6 to opset 17: .*Dimension") as info:
        opset.run(model)
    assert "\n" not in str(info.value)
