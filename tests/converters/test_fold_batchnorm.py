"""fold_batchnorm: Conv→BatchNormalization becomes one Conv; other BNs stay; outputs unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from aeq_onnx.converters import fold_batchnorm

_RNG = np.random.default_rng(3)


def _bn_params(channels: int) -> dict[str, np.ndarray]:
    """Random BN scale, shift, mean and a positive variance."""
    return {
        "scale": _RNG.standard_normal(channels).astype(np.float32),
        "shift": _RNG.standard_normal(channels).astype(np.float32),
        "mean": _RNG.standard_normal(channels).astype(np.float32),
        "var": _RNG.uniform(0.5, 2.0, channels).astype(np.float32),
    }


def _weights(out: int, per_group: int, with_bias: bool) -> dict[str, np.ndarray]:
    """Conv weight (and bias) plus BN parameters for `out` channels."""
    weights = {"w": _RNG.standard_normal((out, per_group, 3, 3)).astype(np.float32)}
    if with_bias:
        weights["b"] = _RNG.standard_normal(out).astype(np.float32)
    return {**weights, **_bn_params(out)}


FOLDS = {
    "conv-with-bias": ("c = Conv<kernel_shape=[3, 3], pads=[1, 1, 1, 1]>(x, w, b)", 4, 3, True),
    "conv-without-bias": ("c = Conv<kernel_shape=[3, 3]>(x, w)", 4, 3, False),
    "depthwise-conv": ("c = Conv<kernel_shape=[3, 3], group=3>(x, w, b)", 3, 1, True),
}


@pytest.mark.parametrize(("conv", "out", "per_group", "bias"), FOLDS.values(), ids=FOLDS.keys())
def test_bn_after_conv_folds(build, same_outputs, ops, conv, out, per_group, bias) -> None:
    """No BatchNormalization left; the Conv writes the BN's output name; outputs equal."""
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, ?, ?, ?] y) {{
          {conv}
          n = BatchNormalization<epsilon=0.001>(c, scale, shift, mean, var)
          y = Relu(n)
        }}"""
    model = build(text, **_weights(out, per_group, bias))
    folded = fold_batchnorm.run(model)
    assert ops(folded) == ["Conv", "Relu"]
    assert folded.graph.node[0].output[0] == "n"
    assert len(folded.graph.node[0].input) == 3
    assert not {"scale", "shift", "mean", "var", "w"} & {t.name for t in folded.graph.initializer}
    same_outputs(model, folded)


def test_bn_that_is_the_graph_output_folds(build, same_outputs, ops) -> None:
    """The Conv takes over the graph output name."""
    text = """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, ?, ?, ?] y) {
          c = Conv<kernel_shape=[3, 3]>(x, w, b)
          y = BatchNormalization(c, scale, shift, mean, var)
        }"""
    model = build(text, **_weights(4, 3, True))
    folded = fold_batchnorm.run(model)
    assert ops(folded) == ["Conv"] and folded.graph.node[0].output[0] == "y"
    same_outputs(model, folded)


def test_shared_weight_keeps_the_other_conv(build, same_outputs, ops) -> None:
    """Folding writes new weights, so a second Conv sharing the old weight is unaffected."""
    text = """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, ?, ?, ?] y, float[N, ?, ?, ?] z) {
          c = Conv<kernel_shape=[3, 3]>(x, w, b)
          y = BatchNormalization(c, scale, shift, mean, var)
          z = Conv<kernel_shape=[3, 3]>(x, w, b)
        }"""
    model = build(text, **_weights(4, 3, True))
    folded = fold_batchnorm.run(model)
    assert ops(folded) == ["Conv", "Conv"]
    assert folded.graph.node[1].input[1] == "w"
    same_outputs(model, folded)


KEEPS = {
    "bn-after-relu": """
          c = Conv<kernel_shape=[3, 3]>(x, w, b)
          r = Relu(c)
          y = BatchNormalization(r, scale, shift, mean, var)
          z = Identity(r)""",
    "conv-output-also-read": """
          c = Conv<kernel_shape=[3, 3]>(x, w, b)
          y = BatchNormalization(c, scale, shift, mean, var)
          z = Relu(c)""",
    "conv-output-is-graph-output": """
          z = Conv<kernel_shape=[3, 3]>(x, w, b)
          y = BatchNormalization(z, scale, shift, mean, var)""",
}


@pytest.mark.parametrize("body", KEEPS.values(), ids=KEEPS.keys())
def test_bn_that_cannot_fold_stays(build, same_outputs, ops, body) -> None:
    """A BN not fed by a Conv, or fed by a Conv output others also use, is untouched."""
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, ?, ?, ?] y, float[N, ?, ?, ?] z) {{ {body}
        }}"""
    model = build(text, **_weights(4, 3, True))
    result = fold_batchnorm.run(model)
    assert ops(result) == ops(model)
    same_outputs(model, result)
