"""Helpers the canonicalisation passes share: IR version, constants, uses, renames, pruning."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import numpy_helper

DEFAULT_DOMAINS = ("", "ai.onnx")
#: Standard quantization ops: never folded or rewritten, so that the explainer's forward pass
#: is the deployed graph onnxruntime fuses into its integer kernels (docs/deployed.md).
QUANTIZATION_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                              "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})

# Smallest IR version that can hold each (newer) tensor element type.
_IR_FOR_DTYPE = {17: 9, 18: 9, 19: 9, 20: 9, 21: 10, 22: 10, 23: 11, 24: 12, 25: 13, 26: 13}


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy, so a pass never modifies its caller's proto."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def has_op(model: onnx.ModelProto, *op_types: str) -> bool:
    """True when the main graph holds a default-domain node of one of ``op_types``."""
    return any(n.op_type in op_types and n.domain in DEFAULT_DOMAINS for n in model.graph.node)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception message on one line (its lines joined), cut at `limit` characters."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def default_opset(model: onnx.ModelProto) -> int | None:
    """The version of the default ONNX domain the model imports, or None."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return None


def _graph_dtypes(graph: onnx.GraphProto) -> Iterator[int]:
    """Element types of the main graph's declared tensors."""
    for info in (*graph.input, *graph.output, *graph.value_info):
        if info.type.HasField("tensor_type"):
            yield info.type.tensor_type.elem_type
    for tensor in graph.initializer:
        yield tensor.data_type


def set_ir_version(model: onnx.ModelProto) -> onnx.ModelProto:
    """Set the smallest IR version that supports the model's opsets and element types."""
    model.ir_version = min_ir_version(model)
    return model


def min_ir_version(model: onnx.ModelProto) -> int:
    """The smallest IR version that supports the model's opsets and element types."""
    opsets = [onnx.helper.make_opsetid(o.domain, o.version) for o in model.opset_import]
    ir = onnx.helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    if model.functions:
        ir = max(ir, 8)  # model-local functions
    inputs = {i.name for i in model.graph.input}
    if any(t.name not in inputs for t in model.graph.initializer):
        ir = max(ir, 4)  # IR 3 requires every initializer to be a graph input too
    for dtype in _graph_dtypes(model.graph):
        ir = max(ir, _IR_FOR_DTYPE.get(dtype, ir))
    return ir


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graphs held in a node's attributes (If/Loop/Scan bodies)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def used_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name read by a node (subgraphs included) or exposed as a graph output."""
    used = {out.name for out in graph.output}
    for node in graph.node:
        used.update(name for name in node.input if name)
        for sub in subgraphs(node):
            used |= used_names(sub)
    return used


def rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Make every node (subgraphs included) that reads `old` read `new` instead."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for sub in subgraphs(node):
            rename_uses(sub, old, new)


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Map tensor name -> main-graph nodes that read it (a node once per name)."""
    result: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in dict.fromkeys(n for n in node.input if n):
            result.setdefault(name, []).append(node)
    return result


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Map tensor name -> the main-graph node that writes it."""
    return {name: node for node in graph.node for name in node.output if name}


def constant_tensors(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers that are true constants (not overridable by a graph input of the same name)."""
    inputs = {i.name for i in graph.input}
    return {t.name: t for t in graph.initializer if t.name not in inputs}


class ConstantLookup:
    """Values of constant initializers and Constant-node tensors, indexed once per pass."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self._tensors = constant_tensors(graph)
        self._producers = producers(graph)

    def tensor(self, name: str) -> onnx.TensorProto | None:
        """The TensorProto holding `name`'s constant value, or None when it is not constant."""
        if name in self._tensors:
            return self._tensors[name]
        node = self._producers.get(name)
        if node is not None and node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    return attr.t
        return None

    def value(self, name: str) -> np.ndarray | None:
        """`name`'s constant value as a numpy array, or None when it is not constant."""
        tensor = self.tensor(name)
        return None if tensor is None else numpy_helper.to_array(tensor)


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    """The node's attribute called `name`, or None."""
    return next((a for a in node.attribute if a.name == name), None)


def attr_int(node: onnx.NodeProto, name: str, default: int) -> int:
    """An INT attribute's value, or `default` when absent."""
    attr = _attribute(node, name)
    return int(attr.i) if attr is not None else default


def attr_float(node: onnx.NodeProto, name: str, default: float) -> float:
    """A FLOAT attribute's value, or `default` when absent."""
    attr = _attribute(node, name)
    return float(attr.f) if attr is not None else default


def attr_ints(node: onnx.NodeProto, name: str) -> list[int] | None:
    """An INTS attribute's values, or None when absent."""
    attr = _attribute(node, name)
    return [int(v) for v in attr.ints] if attr is not None else None


def attr_str(node: onnx.NodeProto, name: str, default: str) -> str:
    """A STRING attribute's value as text, or `default` when absent."""
    attr = _attribute(node, name)
    return attr.s.decode() if attr is not None else default


def unique_name(graph: onnx.GraphProto, base: str) -> str:
    """A tensor name based on `base` that the graph does not use yet."""
    taken = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    taken |= {name for node in graph.node for name in (*node.input, *node.output)}
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


def prune_value_info(graph: onnx.GraphProto) -> None:
    """Drop value_info entries of tensors that no main-graph node produces any more."""
    produced = set(producers(graph))
    infos = [v for v in graph.value_info if v.name in produced]
    if len(infos) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(infos)


def prune(graph: onnx.GraphProto) -> None:
    """Drop unused constant initializers and value_info of tensors no node produces any more."""
    used = used_names(graph)
    inputs = {i.name for i in graph.input}
    keep = [t for t in graph.initializer if t.name in used or t.name in inputs]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
    prune_value_info(graph)
