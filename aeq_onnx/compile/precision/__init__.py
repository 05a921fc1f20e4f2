"""Half-precision (fp16) explainers: the same graph computing in float16 inside a float32 shell.

:func:`to_float16` rewrites an explainer (or any ONNX model of the standard domain) so that every
float32 tensor inside it is float16, while its interface keeps the caller's dtypes: each float32
graph input is cast to float16 right after it enters, each float32 graph output is cast back to
float32 under its own name, and int64 tensors (``target``, ``target_class``, shapes) are not
touched. It was built for CUDA, where float16 halves memory traffic; onnxruntime's CPU
provider also runs it (casting around ops it has no float16 kernel for). Measured on a GPU it
was slower than fp32 (the float32 islands add casts and the runs are launch-bound) and its AE
maps were far outside the goldens' tolerance: not recommended (the figures:
docs/performance.md and the fp16 bullet of docs/choices.md).

What changes inside:

- float32 initializers and ``Constant`` values become float16. A nonzero value smaller in
  magnitude than fp16's smallest subnormal (2**-24) becomes ``±2**-24``, never 0: aeq_onnx's
  stabilisers (``1e-30 · max|W|`` floors in denominators) would otherwise turn into 0 and 0/0 into
  NaN. Finite values beyond ±65504 clamp to ±65504.
- ``Cast(to=FLOAT)`` casts to FLOAT16, ``ConstantOfShape`` fills float16, ``EyeLike(dtype=FLOAT)``
  makes float16; float32 ``value_info`` entries become float16.
- Inputs whose dtype the ONNX spec fixes to float32 (``Resize``'s ``scales``, quantisation
  scales, ...) keep float32: constants feeding them keep their exact float32 values, computed
  tensors get a ``Cast(to=FLOAT)``. Constants feeding an input whose type is free of the main
  one (``OneHot``'s ``depth``, ``Resize``'s ``roi``, ``Pow``'s exponent) also keep float32.
- With ``keep_ratios_fp32`` (default), quotients (Div, Reciprocal), the ops that carry them
  (reshapes, scatters, transposed convolutions, ...) and the op that consumes them last run in
  float32 between Casts: relevance rules divide by activations floored near 0, quotients far
  beyond 65504 that fp16 turns into Inf and then ``0 · Inf`` into NaN.
- Scatters that accumulate (``ScatterElements``/``ScatterND`` with a ``reduction``, the
  max-pool backward pass of the explainers) run in float32 between Casts: onnxruntime's CPU
  provider has no float16 kernel for them and float32 sums are more exact.
- Ops that can only make float32 outputs (``DequantizeLinear``, ``Celu``, float ``Range``, ...),
  random ops, subgraphs, functions and custom domains raise :class:`PrecisionError`.

The model records ``aeq_onnx.precision = fp16`` in its metadata; ``ir_version`` and opsets are
kept.

Layout: :mod:`._common` (constants, :class:`PrecisionError`, the conversion state),
:mod:`.schema` (model checks, dtypes, type slots), :mod:`.values` (tensors and constants),
:mod:`.islands` (float32 islands, the ratio region), :mod:`.nodes` (one node's rewrite) and this
module (the graph-level conversion).
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx
from onnx import helper

from aeq_onnx.compile.precision._common import (
    F16_TYPE,
    F32_TYPE,
    FLOAT,
    FP16,
    FP16_MAX,
    FP16_TINY,
    HALF,
    PRECISION_KEY,
    STANDARD_DOMAINS,
    PrecisionError,
    State,
)
from aeq_onnx.compile.precision.islands import (
    FLOAT32_OPS,
    RATIO_SEEDS,
    RATIO_TRANSPORT,
    float32_nodes,
    prune_casts,
)
from aeq_onnx.compile.precision.nodes import SMALL_CONSTANT, convert_node
from aeq_onnx.compile.precision.schema import (
    REJECTED_OPS,
    check_model,
    infer_dtypes,
    standard_opset,
)
from aeq_onnx.compile.precision.values import attribute_tensor, convert_tensors, fp16_values
from aeq_onnx.errors import MethodError

#: The values ``precision=`` accepts: float32 (as compiled) and the float16 conversion.
PRECISIONS = ("fp32", FP16)

__all__ = [
    "F16_TYPE",
    "F32_TYPE",
    "FLOAT",
    "FLOAT32_OPS",
    "FP16",
    "FP16_MAX",
    "FP16_TINY",
    "HALF",
    "PRECISIONS",
    "PRECISION_KEY",
    "RATIO_SEEDS",
    "RATIO_TRANSPORT",
    "REJECTED_OPS",
    "SMALL_CONSTANT",
    "STANDARD_DOMAINS",
    "PrecisionError",
    "check_precision",
    "fp16_values",
    "is_float16",
    "to_float16",
]


def _float_names(infos: Iterable[onnx.ValueInfoProto]) -> list[str]:
    return [i.name for i in infos if i.type.tensor_type.elem_type == FLOAT]


def _new_state(model: onnx.ModelProto, dtypes: dict[str, int]) -> State:
    graph = model.graph
    taken = {n for node in graph.node for n in (*node.input, *node.output)}
    taken |= {t.name for t in graph.initializer} | {i.name for i in graph.input}
    interface = set(_float_names(graph.input))
    consts = {t.name: t for t in graph.initializer
              if t.data_type == FLOAT and t.name not in interface}
    for node in graph.node:
        value = attribute_tensor(node) if node.op_type == "Constant" else None
        if value is not None:
            consts[node.output[0]] = value
    state = State(taken, dtypes, consts, {})
    state.graph_inputs = {name: state.fresh(f"{name}__fp16") for name in sorted(interface)}
    state.renames.update(state.graph_inputs)
    state.renames.update({n: state.fresh(f"{n}__fp16") for n in _float_names(graph.output)})
    return state


def _interface_casts(state: State, outputs: list[str]) -> tuple[list[onnx.NodeProto],
                                                                  list[onnx.NodeProto]]:
    """Casts of the float32 inputs to float16 and of the float16 outputs back to float32."""
    ins = [helper.make_node("Cast", [name], [inside], to=HALF, name=f"aeq/fp16/{name}")
           for name, inside in state.graph_inputs.items()]
    outs = [helper.make_node("Cast", [state.renames[name]], [name], to=FLOAT,
                             name=f"aeq/fp32/{name}") for name in outputs]
    return ins, outs


def to_float16(model: onnx.ModelProto, *, keep_ratios_fp32: bool = True) -> onnx.ModelProto:
    """A float16 copy of ``model`` with the same float32/int64 interface (``model`` untouched).

    ``keep_ratios_fp32`` (default): quotients (Div, Reciprocal) and what carries them (reshapes,
    scatters, the transposed convolutions of the relevance rules, ...) run in float32 up to the
    op that consumes them (the Mul by the activations): a relevance rule divides by activations
    floored near 0 (``R / max(z, floor)``), a quotient far beyond float16's 65504 that becomes
    Inf and then ``0 · Inf = NaN``. ``False`` converts every op (faster, NaN-prone for AE/LRP).
    Raises :class:`PrecisionError` for what cannot run in float16 (module docstring).
    """
    check_model(model)
    opset = standard_opset(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    state = _new_state(out, infer_dtypes(model))
    flags = float32_nodes(graph, state) if keep_ratios_fp32 else [False] * len(graph.node)
    ins, outs = _interface_casts(state, _float_names(graph.output))
    nodes = [n for node, run32 in zip(graph.node, flags, strict=True)
             for n in convert_node(node, opset, state, run32)]
    del graph.node[:]
    graph.node.extend(prune_casts([*ins, *nodes, *outs], {o.name for o in graph.output}))
    convert_tensors(graph, state)
    out.metadata_props.add(key=PRECISION_KEY, value=FP16)
    return out


def check_precision(precision: str) -> None:
    """Raise :class:`~aeq_onnx.errors.MethodError` unless ``precision`` is one of
    :data:`PRECISIONS` (the ``precision=`` of the compiler, ``Explainer`` and the CLI)."""
    if precision not in PRECISIONS:
        raise MethodError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def is_float16(model: onnx.ModelProto) -> bool:
    """True for a model made by :func:`to_float16` (it carries ``aeq_onnx.precision=fp16``)."""
    return any(p.key == PRECISION_KEY and p.value == FP16 for p in model.metadata_props)
