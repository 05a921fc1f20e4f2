"""What the tests of deployed graphs share (int8 QDQ and QOperator, fp16, uint8 inputs): the
deployed model's own onnxruntime values of its quantized or reduced-precision tensors, and the
comparison of a compiled explainer with the reference explaining the float surrogate.

The float surrogate is the deployed graph run by the torch reference (``tests/rules/``): weights
dequantized (a DequantizeLinear of constants is a constant of the reference graph), every
quantized activation fixed to the value onnxruntime computes for the deployed model
(``fixed``), with the straight-through gradient of the reference's QuantizeLinear. Nothing here
imports ``aeq_onnx`` beyond the compile call under test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto, helper

import aeq_onnx
from tests.helpers import assert_rel_close, explain, reference_explain, session

#: Reduced-precision floats: the reference takes their values from onnxruntime (the deployed
#: model's own rounding), as it takes those of the ops that compute quantized values
#: (:data:`COMPUTING`); ops that only move integers (MaxPool, Reshape) it runs itself.
FLOATS = (TensorProto.FLOAT16, TensorProto.BFLOAT16)
#: The inputs holding a quantizing node's output (scale, zero point), from the ONNX and
#: onnxruntime (com.microsoft) operator definitions; com.microsoft ops have no ONNX type
#: inference, so the zero point's type is the output's.
OUTPUT_PARAMS = {"QuantizeLinear": (1, 2), "QLinearConv": (6, 7), "QLinearMatMul": (6, 7),
                 "QGemm": (7, 8), "QLinearAdd": (6, 7), "QLinearMul": (6, 7),
                 "QLinearGlobalAveragePool": (3, 4), "QLinearAveragePool": (3, 4),
                 "QLinearConcat": (0, 1), "QLinearSigmoid": (3, 4), "QLinearLeakyRelu": (3, 4)}
#: Ops whose outputs the reference takes from onnxruntime: the quantizing ones (held as their
#: float view), and the integer-unit ones of dynamic quantization (held as integers).
COMPUTING = {*OUTPUT_PARAMS, "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}


def _types(model: onnx.ModelProto) -> dict[str, int]:
    """Element types of the model's node outputs, as far as they can be known."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in (
        *inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input)}
    inits = {t.name: t.data_type for t in model.graph.initializer}
    for node in model.graph.node:
        where = OUTPUT_PARAMS.get(node.op_type, (0, -1))[1]
        if where >= 0 and len(node.input) > where and node.input[where] in inits:
            types[node.output[0]] = inits[node.input[where]]
        elif node.op_type == "QuantizeLinear":
            types[node.output[0]] = TensorProto.UINT8
        if node.op_type == "DynamicQuantizeLinear":
            types[node.output[0]] = TensorProto.UINT8
        if node.op_type in ("ConvInteger", "MatMulInteger"):
            types[node.output[0]] = TensorProto.INT32
    return types


def deployed_values(model: onnx.ModelProto, x: np.ndarray,
                    probe_atol: float = 0.0) -> dict[str, np.ndarray]:
    """The values onnxruntime computes for every quantized or reduced-precision node output of
    ``model`` on ``x`` (as float64), its logits under ``"logits"``. Asking for them must not
    change the model's logits (checked: the values are those of the deployed run), save within
    ``probe_atol`` for fp16 graphs, where onnxruntime's CPU kernels fuse (and round)
    differently once intermediate tensors are graph outputs."""
    types = _types(model)
    outputs = {o.name for o in model.graph.output}
    names = [o for n in model.graph.node for o in n.output
             if o and o not in outputs and (n.op_type in COMPUTING or types.get(o) in FLOATS)]
    types.update({n.output[1]: TensorProto.FLOAT for n in model.graph.node
                  if n.op_type == "DynamicQuantizeLinear"})
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_tensor_value_info(n, types[n], None) for n in names)
    sess = session(probe)
    feed = {sess.get_inputs()[0].name: x}
    got = sess.run(None, feed)
    plain = session(model).run(None, feed)[0]
    np.testing.assert_allclose(np.asarray(got[0], np.float64), np.asarray(plain, np.float64),
                               rtol=0, atol=probe_atol,
                               err_msg="exposing the activations changed the logits")
    values = {n: np.asarray(v, np.float64) for n, v in zip(names, got[1:], strict=True)}
    for node in model.graph.node:
        if node.op_type in OUTPUT_PARAMS and node.output[0] in values:
            values[node.output[0]] = _float_view(model, node, values[node.output[0]])
    values["logits"] = plain
    return values


def _float_view(model: onnx.ModelProto, node: onnx.NodeProto, q: np.ndarray) -> np.ndarray:
    """A quantizing node's integer output as the value it stands for, ``(q - zp) · scale``
    (the reference holds quantized activations so), per tensor or along the node's axis."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    s_at, z_at = OUTPUT_PARAMS[node.op_type]
    scale = inits[node.input[s_at]].astype(np.float64)
    zero = (inits[node.input[z_at]].astype(np.float64)
            if len(node.input) > z_at and node.input[z_at] else np.zeros(()))
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % q.ndim
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape) if zero.size > 1 else zero
    return (q - zero) * scale


@dataclass
class Deployed:
    """A compiled explainer's outputs and the reference's, for one deployed model."""

    explainer: onnx.ModelProto
    out: dict[str, np.ndarray]
    ref: dict[str, np.ndarray]
    logits: np.ndarray
    #: relative errors against the reference (of max |ref|): "R", "R0"
    errors: dict[str, float]


def compare_deployed(model: onnx.ModelProto, x: np.ndarray, *, tol: float = 1e-4,
                     logits_atol: float = 0.0, probe_atol: float = 0.0,
                     target: Sequence[int] | None = None,
                     **compile_kw: object) -> Deployed:
    """Compile ``model`` and check: logits equal the deployed model's onnxruntime logits
    (exactly unless ``logits_atol``), the target, and relevance and R0 against the reference
    on the float surrogate (``tol`` of max |R|; ``probe_atol``: see :func:`deployed_values`)."""
    explainer = aeq_onnx.compile_explainer(model, **compile_kw)  # type: ignore[arg-type]
    out = explain(explainer, x, target)
    np.testing.assert_array_equal(out["logits"], session(model).run(None, {
        session(model).get_inputs()[0].name: x})[0].astype(np.float32))
    fixed = deployed_values(model, x, probe_atol)
    logits = fixed.pop("logits")
    if logits_atol:
        np.testing.assert_allclose(out["logits"], logits, rtol=0, atol=logits_atol)
    else:
        np.testing.assert_array_equal(out["logits"], logits)
    ref = reference_explain(model, x, target=None if target is None else int(target[0]),
                            fixed=fixed) if target is None or len(set(target)) == 1 else None
    assert ref is not None, "one target for the whole batch"
    np.testing.assert_array_equal(out["target_class"], ref["target"])
    errors = {"R0": assert_rel_close(out["initial_relevance"], ref["R0"], tol,
                                     "initial_relevance"),
              "R": assert_rel_close(out["relevance"], ref["R"], tol, "relevance")}
    print(f"vs reference: R {errors['R']:.2e}, R0 {errors['R0']:.2e} of max |ref|")
    return Deployed(explainer, out, ref, logits, errors)


def quantized(model: onnx.ModelProto, fmt: str = "QDQ", per_channel: bool = False,
              activation: str = "QInt8", weight: str = "QInt8", seed: int = 0,
              **extra: object) -> onnx.ModelProto:
    """``model`` quantized by onnxruntime's ``quantize_static`` (``fmt`` QDQ or QOperator) with
    eight seeded standard-normal calibration batches; asymmetric activations."""
    import logging
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)
    batches = iter([rng.standard_normal(shape).astype(np.float32) for _ in range(8)])
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(batches, None)
            return None if item is None else {name: item}

    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        quantize_static(str(src), str(out), Reader(), quant_format=getattr(QuantFormat, fmt),
                        per_channel=per_channel, activation_type=getattr(QuantType, activation),
                        weight_type=getattr(QuantType, weight),
                        extra_options={"ActivationSymmetric": False, **extra})
        result = onnx.load(str(out))
    result.ir_version = model.ir_version
    return result


def ops_of(model: onnx.ModelProto) -> set[str]:
    """The op types a model holds."""
    return {n.op_type for n in model.graph.node}


def quantized_dynamic(model: onnx.ModelProto,
                      ops: Sequence[str] = ("MatMul",)) -> onnx.ModelProto:
    """``model`` quantized by onnxruntime's ``quantize_dynamic`` (uint8 weights) for ``ops``:
    DynamicQuantizeLinear, then ConvInteger / MatMulInteger scaled back to float."""
    import logging
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QUInt8,
                         op_types_to_quantize=list(ops))
        result = onnx.load(str(out))
    result.ir_version = model.ir_version
    return result
