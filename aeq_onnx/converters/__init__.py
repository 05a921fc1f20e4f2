"""Canonicalisation passes, run in order before compiling: see PIPELINE."""

from __future__ import annotations

from collections.abc import Callable

import onnx
import onnx.checker

from aeq_onnx.converters import (
    einsum_matmul,
    fold_batchnorm,
    fold_constants,
    fuse_layernorm,
    fuse_layernorm_tf,
    fuse_lrn,
    infer_shapes,
    legacy_batchnorm,
    opset,
    strip_identity,
    weight_inputs,
)
from aeq_onnx.converters._graph_utils import one_line
from aeq_onnx.errors import ConversionError
from aeq_onnx.load import protos

Pass = Callable[[onnx.ModelProto], onnx.ModelProto]

# Order matters: weights listed as inputs (IR < 4) become plain constants first; a spatial=0
# BatchNormalization (opsets 7-8), which onnx's version converter refuses, becomes arithmetic
# before the opset upgrade; shapes feed constant folding; torch's LRN decomposition is fused
# once its constants are folded and its shapes known; folding exposes BatchNormalization
# constants to their pass; the second fold removes the constants those passes left behind; a
# decomposed LayerNorm (constants folded by then), torch's or Keras' (TF moments), becomes
# one op, a batched matrix product
# written as Einsum a MatMul; the final inference annotates the canonical graph for the
# compiler.
# Explicit Pads are not folded into Convs: that would change AE relevance (docs/choices.md,
# "Explicit Pads stay Pads").
PIPELINE: list[Pass] = [
    weight_inputs.run,
    legacy_batchnorm.run,
    opset.run,
    infer_shapes.run,
    fold_constants.run,
    fuse_lrn.run,
    strip_identity.run,
    fold_batchnorm.run,
    fold_constants.run,
    fuse_layernorm.run,
    fuse_layernorm_tf.run,
    einsum_matmul.run,
    infer_shapes.run,
]


def canonicalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Run every pass of PIPELINE in order, then check the result is a valid ONNX model."""
    return canonicalize_owned([model])


def canonicalize_owned(box: list[onnx.ModelProto]) -> onnx.ModelProto:
    """:func:`canonicalize` on the model taken out of ``box``: when the caller holds no other
    reference, each pass's input is freed as soon as it returns, so a big model is held at most
    twice (one pass's input and output), never once per pass."""
    model = box.pop()
    for step in PIPELINE:
        model = step(model)
    try:
        protos.check(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise ConversionError(f"canonicalised model is invalid: {one_line(exc)}") from exc
    return model
