"""Opset pass: bring the default ONNX domain up to opset 17 so later passes see one op form."""

from __future__ import annotations

import onnx
import onnx.version_converter

from aeq_onnx.converters._graph_utils import (
    copy_model,
    default_opset,
    min_ir_version,
    one_line,
    set_ir_version,
)
from aeq_onnx.errors import ConversionError

TARGET_OPSET = 17


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert a default-domain opset below 17 up to 17 (one op form to handle); keep >= 17."""
    current = default_opset(model)
    if current is None or current >= TARGET_OPSET:
        if min_ir_version(model) == model.ir_version:
            return model
        return set_ir_version(copy_model(model))
    try:
        converted = onnx.version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:  # the C++ converter raises several unrelated types
        raise ConversionError(
            f"cannot convert the model from opset {current} to opset {TARGET_OPSET}: "
            f"{one_line(exc)}"
        ) from exc
    return set_ir_version(converted)
