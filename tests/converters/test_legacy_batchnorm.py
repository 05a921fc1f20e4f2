"""legacy_batchnorm: a spatial=0 BatchNormalization (opsets 7-8, statistics per activation),
which onnx's version converter refuses, becomes Sub/Mul/Add with the same outputs and then
upgrades; spatial=1, other opsets and training-mode nodes are left alone."""

from __future__ import annotations

import numpy as np
import onnx.version_converter
import pytest

from aeq_onnx.converters import legacy_batchnorm, opset

RNG = np.random.default_rng(3)
STATS = {"s": RNG.uniform(0.5, 1.5, (3, 4, 4)), "b": RNG.standard_normal((3, 4, 4)),
         "m": RNG.standard_normal((3, 4, 4)), "v": RNG.uniform(0.5, 1.5, (3, 4, 4))}


def text(version: int, spatial: int, outputs: str = "y") -> str:
    return f"""<ir_version: 4, opset_import: ["" : {version}]>
        g (float[N, 3, 4, 4] x) => (float[N, 3, 4, 4] y) {{
          c = Relu(x)
          {outputs} = BatchNormalization<spatial={spatial}, epsilon=1e-2>(c, s, b, m, v)
        }}"""


def stats(spatial: int) -> dict[str, np.ndarray]:
    return {k: (v if spatial == 0 else v[:, 0, 0]).astype(np.float32) for k, v in STATS.items()}


@pytest.mark.parametrize("version", [7, 8])
def test_per_activation_batchnorm_becomes_arithmetic(build, same_outputs, ops,
                                                     version: int) -> None:
    model = build(text(version, 0), **stats(0))
    with pytest.raises(RuntimeError, match="spatial must have value 1"):
        onnx.version_converter.convert_version(model, 17)  # why the pass exists
    rewritten = legacy_batchnorm.run(model)
    assert ops(rewritten) == ["Relu", "Add", "Sqrt", "Div", "Sub", "Mul", "Add"]
    same_outputs(model, rewritten)
    same_outputs(model, opset.run(rewritten))


@pytest.mark.parametrize("version,spatial", [(7, 1), (8, 1), (9, 1), (6, 0)])
def test_other_batchnorms_are_untouched(build, version: int, spatial: int) -> None:
    body = text(version, spatial)
    if version == 9:
        body = body.replace("<spatial=1, ", "<")  # opset 9 has no spatial attribute
    model = build(body, **stats(spatial))
    assert legacy_batchnorm.run(model) is model
