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
    upsampled = {n.output[0] for n in model.graph.node if n.op_type == "Upsample"}
    try:
        converted = onnx.version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:  # the C++ converter raises several unrelated types
        raise ConversionError(
            f"cannot convert the model from opset {current} to opset {TARGET_OPSET}: "
            f"{one_line(exc)}"
        ) from exc
    _keep_upsample_semantics(converted, upsampled)
    return set_ir_version(converted)


def _keep_upsample_semantics(model: onnx.ModelProto, upsampled: set[str]) -> None:
    """Resize nodes made from Upsample keep its asymmetric coordinates and floor rounding.

    onnx's converter leaves Resize's defaults (half_pixel, round_prefer_floor), which changes
    a linear Upsample's output.
    """
    for node in model.graph.node:
        if node.op_type != "Resize" or node.output[0] not in upsampled:
            continue
        kept = [a for a in node.attribute
                if a.name not in ("coordinate_transformation_mode", "nearest_mode")]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(onnx.helper.make_attribute("coordinate_transformation_mode",
                                                         "asymmetric"))
        node.attribute.append(onnx.helper.make_attribute("nearest_mode", "floor"))
