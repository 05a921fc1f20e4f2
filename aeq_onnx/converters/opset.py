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
    float_masks = _float_masks(model) if current < 10 else set()
    try:
        converted = onnx.version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:  # the C++ converter raises several unrelated types
        raise ConversionError(
            f"cannot convert the model from opset {current} to opset {TARGET_OPSET}: "
            f"{one_line(exc)}"
        ) from exc
    _keep_upsample_semantics(converted, upsampled)
    _keep_float_masks(converted, float_masks)
    return set_ir_version(converted)


def _float_masks(model: onnx.ModelProto) -> set[str]:
    """Dropout mask outputs (opsets 7-9: the input's float type) that something reads."""
    used = {name for node in model.graph.node for name in node.input}
    used |= {out.name for out in model.graph.output}
    return {n.output[1] for n in model.graph.node
            if n.op_type == "Dropout" and len(n.output) > 1 and n.output[1] in used}


def _keep_float_masks(model: onnx.ModelProto, masks: set[str]) -> None:
    """A read Dropout mask stays a float tensor: opset 10 made it bool, and onnx's converter
    keeps the float declarations (onnxruntime then refuses the model), so the converted
    Dropout's bool mask is cast back to float under the mask's own name."""
    declared = {v.name: v.type.tensor_type.elem_type
                for v in (*model.graph.value_info, *model.graph.output)}
    for node in [n for n in model.graph.node if n.op_type == "Dropout"]:
        if len(node.output) < 2 or node.output[1] not in masks:
            continue
        mask = node.output[1]
        node.output[1] = f"{mask}/bool"
        cast = onnx.helper.make_node("Cast", [node.output[1]], [mask], name=f"{mask}/cast",
                                     to=declared.get(mask) or onnx.TensorProto.FLOAT)
        position = list(model.graph.node).index(node) + 1
        model.graph.node.insert(position, cast)


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
