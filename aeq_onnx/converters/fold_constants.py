"""Constant pass: evaluate each node whose value is known at compile time into a constant."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
import onnx.shape_inference
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from aeq_onnx.converters._graph_utils import (
    DEFAULT_DOMAINS,
    QUANTIZATION_OPS,
    attr_int,
    attr_ints,
    constant_tensors,
    copy_model,
    producers,
    prune,
    set_ir_version,
    subgraphs,
    used_names,
)
from aeq_onnx.load import protos

MAX_FOLDED_BYTES = 64 * 2**20  # larger results stay computed at run time
_MAX_ROUNDS = 32
_RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial"}
    | {"Bernoulli", "Dropout"}  # Dropout is random in training mode; strip_identity handles it
)
# Ops whose output can be far larger than their inputs: evaluated only when its size is known.
_EXPANDING_OPS = frozenset({"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample"})

Dims = list[int | None]


@dataclass(frozen=True)
class _TensorInfo:
    """What shape inference knows about one tensor: element type and dims (None: rank unknown)."""

    elem_type: int
    dims: Dims | None


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace compile-time-known values (constants, static shapes, shape math) by initializers."""
    if not _may_fold(model.graph):
        return model
    model = copy_model(model)
    for _ in range(_MAX_ROUNDS):
        if not _Folder(model).fold_all():
            break
    _remove_dead_nodes(model.graph)
    prune(model.graph)
    return set_ir_version(model)


def _may_fold(graph: onnx.GraphProto) -> bool:
    """Cheap test: a Constant or Shape node, or a node whose inputs are all initializers."""
    weights = {t.name for t in graph.initializer}
    return any(
        node.op_type in ("Constant", "Shape")
        or (node.input and all(not name or name in weights for name in node.input))
        for node in graph.node
    )


class _Folder:
    """One sweep over the graph in topological order, folding as constants become known."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.infos = _tensor_infos(model)
        self.consts = constant_tensors(self.graph)
        self.arrays: dict[str, np.ndarray] = {}
        self.writers = producers(self.graph)
        self.outputs = {out.name for out in self.graph.output}

    def fold_all(self) -> bool:
        """Fold every foldable node; True when anything changed."""
        changed = False
        for node in list(self.graph.node):
            values = self._fold(node)
            if values is not None:
                self._replace(node, values)
                changed = True
        return changed

    def _value(self, name: str) -> np.ndarray:
        """A constant's value (cached)."""
        if name not in self.arrays:
            self.arrays[name] = numpy_helper.to_array(self.consts[name])
        return self.arrays[name]

    def _fold(self, node: onnx.NodeProto) -> dict[str, np.ndarray] | None:
        """The values of the node's outputs when they are known now, else None."""
        if node.domain not in DEFAULT_DOMAINS or any(o in self.outputs for o in node.output):
            return None
        if node.op_type in _RANDOM_OPS or any(True for _ in subgraphs(node)):
            return None
        if node.op_type in QUANTIZATION_OPS:  # a DequantizeLinear of weights stays: see there
            return None
        if all(name in self.consts for name in node.input if name):
            return self._evaluate(node)
        value: np.ndarray | None = None
        if node.op_type == "Shape":
            value = _static(self._shape_dims(node))
        elif node.op_type in ("Gather", "Slice"):
            value = self._picked_shape_dims(node)
        return None if value is None else {node.output[0]: value}

    def _evaluate(self, node: onnx.NodeProto) -> dict[str, np.ndarray] | None:
        """Run one all-constant node with the reference evaluator, within the size limit."""
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:  # already stored in the model: no size limit
                return {node.output[0]: numpy_helper.to_array(value)}
        if not all(self._fits(name, node.op_type) for name in node.output if name):
            return None
        try:
            results = _run_node(node, self.model, {n: self._value(n) for n in node.input if n})
        except Exception:  # the evaluator lacks the op or the values are invalid: keep the node
            return None
        wanted = [name for name in node.output if name]
        values = {
            name: value
            for name, value in zip(node.output, results, strict=False)
            if name and isinstance(value, np.ndarray) and self._accepts(name, value)
        }
        return values if len(values) == len(wanted) else None

    def _fits(self, name: str, op_type: str) -> bool:
        """False when inference says the tensor would exceed the fold limit (or may, unknown)."""
        info = self.infos.get(name)
        if info is None or info.dims is None or any(d is None for d in info.dims):
            return op_type not in _EXPANDING_OPS
        return math.prod(d or 0 for d in info.dims) * _itemsize(info.elem_type) <= MAX_FOLDED_BYTES

    def _accepts(self, name: str, value: np.ndarray) -> bool:
        """True for a small array whose dtype matches the inferred element type."""
        if value.nbytes > MAX_FOLDED_BYTES:
            return False
        info = self.infos.get(name)
        if info is None or info.elem_type == onnx.TensorProto.UNDEFINED:
            return True
        try:
            return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(info.elem_type)) == value.dtype
        except (KeyError, TypeError, ValueError):
            return False

    def _shape_dims(self, shape: onnx.NodeProto) -> Dims | None:
        """The dims a Shape node outputs (None where dynamic), or None when the rank is unknown."""
        info = self.infos.get(shape.input[0])
        if info is None or info.dims is None:
            return None
        dims = info.dims
        return dims[attr_int(shape, "start", 0) : attr_int(shape, "end", len(dims))]

    def _picked_shape_dims(self, node: onnx.NodeProto) -> np.ndarray | None:
        """Static dims a Gather/Slice with constant indices takes from a Shape output, else None."""
        shape = self.writers.get(node.input[0])
        if shape is None or shape.op_type != "Shape" or shape.domain not in DEFAULT_DOMAINS:
            return None
        dims = self._shape_dims(shape)
        if dims is None or not all(name in self.consts for name in node.input[1:] if name):
            return None
        try:
            if node.op_type == "Gather":
                return _gather(node, dims, self._value(node.input[1]))
            return _slice(node, dims, [self._value(n) if n else None for n in node.input[1:]])
        except (IndexError, ValueError):
            return None

    def _replace(self, node: onnx.NodeProto, values: dict[str, np.ndarray]) -> None:
        """Store the node's output values as initializers and drop the node."""
        for name, value in values.items():
            tensor = numpy_helper.from_array(np.asarray(value), name)
            self.graph.initializer.append(tensor)
            self.consts[name] = tensor
            self.arrays[name] = np.asarray(value)
        self.graph.node.remove(node)


def _static(dims: Dims | None) -> np.ndarray | None:
    """A fully static dims list as an int64 vector, else None."""
    if dims is None or any(d is None for d in dims):
        return None
    return np.array(dims, dtype=np.int64)


def _gather(node: onnx.NodeProto, dims: Dims, indices: np.ndarray) -> np.ndarray | None:
    """Gather(axis 0) on a 1-D shape: the picked dims, shaped like the indices, if all static."""
    if attr_int(node, "axis", 0) not in (0, -1):
        return None
    picked = _static([dims[int(i)] for i in indices.reshape(-1)])  # negatives count from the end
    return None if picked is None else picked.reshape(indices.shape)


def _slice(node: onnx.NodeProto, dims: Dims, args: list[np.ndarray | None]) -> np.ndarray | None:
    """Slice on a 1-D shape (input form, or Slice-1 attributes): the picked dims if all static."""
    if node.op_type != "Slice":
        return None
    if args:  # opset >= 10: starts, ends, axes, steps as inputs
        starts, ends = args[0], args[1] if len(args) > 1 else None
        axes, steps = (args[2] if len(args) > 2 else None), (args[3] if len(args) > 3 else None)
    else:
        starts, ends = _ints_array(node, "starts"), _ints_array(node, "ends")
        axes, steps = _ints_array(node, "axes"), None
    if starts is None or ends is None or starts.size != 1 or ends.size != 1:
        return None
    if axes is not None and [int(a) for a in axes.reshape(-1)] not in ([0], [-1]):
        return None
    step = 1 if steps is None else int(steps.reshape(-1)[0])
    if step == 0:
        return None
    return _static(dims[int(starts.reshape(-1)[0]) : int(ends.reshape(-1)[0]) : step])


def _ints_array(node: onnx.NodeProto, name: str) -> np.ndarray | None:
    """An INTS attribute as an int64 array, or None when absent."""
    values = attr_ints(node, name)
    return None if values is None else np.array(values, dtype=np.int64)


def _itemsize(elem_type: int) -> int:
    """Bytes per element of an ONNX tensor type (8 when numpy has no such type)."""
    try:
        return int(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 8


def _run_node(
    node: onnx.NodeProto, model: onnx.ModelProto, feeds: dict[str, np.ndarray]
) -> list[object]:
    """Evaluate one node on constant inputs with onnx's reference evaluator."""
    untyped = onnx.TypeProto()
    graph = onnx.helper.make_graph(
        [node],
        "fold",
        [onnx.helper.make_value_info(name, untyped) for name in feeds],
        [onnx.helper.make_value_info(name, untyped) for name in node.output if name],
    )
    tiny = onnx.helper.make_model(graph, opset_imports=list(model.opset_import))
    return list(ReferenceEvaluator(tiny).run(None, feeds))


def _tensor_infos(model: onnx.ModelProto) -> dict[str, _TensorInfo]:
    """Element type and dims of every tensor, inferred afresh from the graph inputs (best effort).

    Stored value_info and declared output shapes are dropped first: a stale static batch there
    must never be folded into a constant.
    """
    fresh = protos.skeleton(model)
    del fresh.graph.value_info[:]
    for output in fresh.graph.output:
        output.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(fresh, data_prop=True)
    except Exception:  # inference is only a hint here; the strict pass reports real problems
        inferred = fresh
    graph = inferred.graph
    infos = {t.name: _TensorInfo(t.data_type, list(t.dims)) for t in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        if value.type.HasField("tensor_type"):
            infos[value.name] = _info(value.type.tensor_type)
    return infos


def _info(tensor_type: onnx.TypeProto.Tensor) -> _TensorInfo:
    """A tensor type as _TensorInfo; symbolic or missing dims become None."""
    if not tensor_type.HasField("shape"):
        return _TensorInfo(tensor_type.elem_type, None)
    dims: Dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    return _TensorInfo(tensor_type.elem_type, dims)


def _remove_dead_nodes(graph: onnx.GraphProto) -> None:
    """Drop nodes none of whose outputs is read or a graph output (walking backwards)."""
    used = {out.name for out in graph.output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if any(name in used for name in node.output):
            keep.append(node)
            used.update(node.input)
            for sub in subgraphs(node):
                used |= used_names(sub)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(reversed(keep))
