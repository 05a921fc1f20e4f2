"""Shared pieces of the float16 conversion: dtype constants, :class:`PrecisionError` and the
per-graph conversion :class:`State` (with :func:`float32_source`, its float32 copies and Casts)."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import TensorProto, helper

from aeq_onnx.compile.assemble import META_PREFIX
from aeq_onnx.errors import AeqError

#: Metadata key (``aeq_onnx.precision``) and the value a float16 model carries.
PRECISION_KEY = META_PREFIX + "precision"
FP16 = "fp16"
#: fp16's smallest positive subnormal and largest finite value.
FP16_TINY = 2.0**-24
FP16_MAX = 65504.0
FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
F32_TYPE, F16_TYPE = "tensor(float)", "tensor(float16)"
STANDARD_DOMAINS = ("", "ai.onnx")


class PrecisionError(AeqError):
    """The model cannot be converted to float16 (an op, attribute or structure it cannot keep)."""


@dataclass
class State:
    """The conversion of one graph: names in use, dtypes, constants, renames, new tensors."""

    taken: set[str]
    dtypes: dict[str, int]
    consts: dict[str, TensorProto]  # float32 initializers and Constant values, by tensor name
    graph_inputs: dict[str, str]  # float32 interface input -> its float16 name inside
    renames: dict[str, str] = field(default_factory=dict)
    fp32_copies: dict[str, str] = field(default_factory=dict)
    casts: dict[str, str] = field(default_factory=dict)
    new_initializers: list[TensorProto] = field(default_factory=list)

    def fresh(self, base: str) -> str:
        """A tensor name not yet used in the graph, starting with ``base``."""
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name


def float32_source(source: str, state: State, node: onnx.NodeProto) -> tuple[
        str, list[onnx.NodeProto]]:
    """A float32 tensor holding ``source``'s value (exact for constants and interface inputs)
    and the Cast to run before ``node`` when one is needed."""
    if source in state.consts:
        if source not in state.fp32_copies:
            copy = TensorProto()
            copy.CopyFrom(state.consts[source])
            copy.name = state.fresh(f"{source}__fp32")
            state.new_initializers.append(copy)
            state.fp32_copies[source] = copy.name
        return state.fp32_copies[source], []
    if source in state.graph_inputs:
        return source, []
    if source not in state.casts:
        state.casts[source] = state.fresh(f"{source}__fp32")
        inside = state.renames.get(source, source)
        return state.casts[source], [helper.make_node(
            "Cast", [inside], [state.casts[source]], to=FLOAT,
            name=state.fresh(f"aeq/fp32/{node.name or node.op_type}"))]
    return state.casts[source], []
