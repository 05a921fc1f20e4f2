"""Model checks and ONNX-schema analysis for the float16 conversion: which models and ops it
accepts, the element type of every tensor, and how each float input or output slot of an op
converts (float16, fixed float32 by the spec, or a type of its own)."""

from __future__ import annotations

import onnx
import onnx.shape_inference

from aeq_onnx.compile.precision._common import (
    F16_TYPE,
    F32_TYPE,
    PRECISION_KEY,
    STANDARD_DOMAINS,
    PrecisionError,
)
from aeq_onnx.load.protos import skeleton

#: Ops with a dtype attribute this package does not rewrite (random sampling, sequences).
REJECTED_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike",
                          "RandomUniformLike", "Bernoulli", "Multinomial", "SequenceEmpty"})


# --------------------------------------------------------------------------- checks


def check_model(model: onnx.ModelProto) -> None:
    """Raise :class:`PrecisionError` for a model the float16 conversion cannot handle."""
    if any(p.key == PRECISION_KEY for p in model.metadata_props):
        raise PrecisionError("the model is already converted (it has aeq_onnx.precision)")
    if model.functions or model.graph.sparse_initializer:
        raise PrecisionError("models with local functions or sparse initializers are not "
                             "supported by the float16 conversion")
    for node in model.graph.node:
        if node.domain not in STANDARD_DOMAINS:
            raise PrecisionError(f"node '{node.name}' ({node.op_type}) is in the custom domain "
                                 f"'{node.domain}': its float16 typing is unknown")
        if node.op_type in REJECTED_OPS:
            raise PrecisionError(f"node '{node.name}': {node.op_type} has a dtype attribute the "
                                 "float16 conversion does not rewrite")
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute):
            raise PrecisionError(f"node '{node.name}' ({node.op_type}) has a subgraph: "
                                 "control flow is not supported by the float16 conversion")


def standard_opset(model: onnx.ModelProto) -> int:
    """The model's standard-domain opset version."""
    for entry in model.opset_import:
        if entry.domain in STANDARD_DOMAINS:
            return int(entry.version)
    raise PrecisionError("the model imports no standard ONNX opset")


def op_schema(node: onnx.NodeProto, opset: int) -> onnx.defs.OpSchema:
    """The schema of ``node``'s op at ``opset``."""
    try:
        return onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError as error:
        raise PrecisionError(f"node '{node.name}': no schema for {node.op_type} at opset "
                             f"{opset}") from error


# --------------------------------------------------------------------------- dtypes, slots


def infer_dtypes(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor, from shape inference on the weight-free skeleton."""
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton(model), strict_mode=False)
    except (onnx.shape_inference.InferenceError, ValueError) as error:
        raise PrecisionError(f"type inference failed before the float16 conversion: "
                             f"{error}") from error
    graph = inferred.graph
    out = {t.name: t.data_type for t in model.graph.initializer}
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.HasField("tensor_type"):
            out[info.name] = info.type.tensor_type.elem_type
    return out


def formal_param(schema_params: list[onnx.defs.OpSchema.FormalParameter],
           index: int) -> onnx.defs.OpSchema.FormalParameter | None:
    """The formal parameter of input/output ``index`` (the last one when it is variadic)."""
    if index < len(schema_params):
        return schema_params[index]
    last = schema_params[-1] if schema_params else None
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    return last if last is not None and last.option == variadic else None


def slot_kind(schema: onnx.defs.OpSchema, type_str: str) -> str:
    """How a float input of formal type ``type_str`` converts: 'half', 'fixed' (stays float32),
    'free' (its own type variable: float16 allowed, constants keep float32) or 'none' (the type
    variable is shared and has no float16: the op cannot run in float16)."""
    if type_str == F32_TYPE:
        return "fixed"
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    if type_str not in allowed:
        return "half"
    uses = [p for p in (*schema.inputs, *schema.outputs) if p.type_str == type_str]
    alone = len(uses) == 1
    if F16_TYPE not in allowed[type_str]:
        return "fixed" if alone else "none"
    return "free" if alone else "half"


def fixed_output(schema: onnx.defs.OpSchema, type_str: str) -> bool:
    """True for an output of formal type ``type_str`` that the spec fixes to float32."""
    if type_str == F32_TYPE:
        return True
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    types = allowed.get(type_str, set())
    return F32_TYPE in types and F16_TYPE not in types
