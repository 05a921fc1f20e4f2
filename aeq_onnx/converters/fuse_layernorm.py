"""LayerNorm pass: fuse the decomposed pattern into one LayerNormalization op.

Exporters below opset 17 (TorchScript's ``nn.LayerNorm`` at opset 11/13) and tf2onnx write
LayerNorm as ``m = ReduceMean(x)``, ``d = x - m``, ``v = ReduceMean(d²)`` (Pow or Mul),
``n = d / Sqrt(v + eps)`` (Div, or Mul by its Reciprocal), then ``Mul γ`` and ``Add β``
(optional), all over the same trailing axes. That is exactly ``LayerNormalization(x, γ, β,
axis, epsilon)``, so the pattern is replaced by the op, whose rule holds σ constant as
ae-tokens T3 asks (a rule per part would have to recognise the same pattern to know which
Div operand is a statistic). Fused only when every intermediate has no other reader and γ, β,
eps are constants; anything else stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from aeq_onnx.converters._graph_utils import (
    ConstantLookup,
    attr_int,
    attr_ints,
    consumers,
    copy_model,
    default_opset,
    has_op,
    prune,
    set_ir_version,
    unique_name,
)

Readers = dict[str, list[onnx.NodeProto]]


@dataclass
class Match:
    """One decomposed LayerNorm: its input, nodes, constants and final output."""

    x: str
    axes: list[int]
    eps: float
    nodes: list[onnx.NodeProto]
    gamma: np.ndarray | None
    beta: np.ndarray | None
    out: str


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each exact decomposed LayerNorm by one LayerNormalization (opset >= 17)."""
    if not has_op(model, "ReduceMean") or (default_opset(model) or 0) < 17 or not _find(model):
        return model
    model = copy_model(model)
    graph = model.graph
    shapes = _shapes(model)
    for match in _find(model):
        _replace(graph, match, shapes.get(match.x))
    prune(graph)
    return set_ir_version(model)


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Inferred dims by tensor name (None where not static)."""
    infos = [*model.graph.value_info, *model.graph.input, *model.graph.output]
    return {i.name: [d.dim_value if d.HasField("dim_value") else None
                     for d in i.type.tensor_type.shape.dim]
            for i in infos if i.type.tensor_type.HasField("shape")}


def _axes(node: onnx.NodeProto, consts: ConstantLookup) -> list[int] | None:
    if attr_int(node, "keepdims", 1) != 1:
        return None
    if len(node.input) > 1 and node.input[1]:
        value = consts.value(node.input[1])
        return None if value is None else [int(a) for a in value.reshape(-1)]
    return attr_ints(node, "axes")


def _single(readers: Readers, name: str, op: str | tuple[str, ...]) -> onnx.NodeProto | None:
    """The only reader of ``name`` when it is an ``op`` node."""
    found = readers.get(name, [])
    ops = (op,) if isinstance(op, str) else op
    return found[0] if len(found) == 1 and found[0].op_type in ops else None


def _other(node: onnx.NodeProto, name: str) -> str:
    """The operand of a binary node that is not ``name``."""
    return node.input[1] if node.input[0] == name else node.input[0]


def _scalar(consts: ConstantLookup, name: str, test: Callable[[float], bool]) -> float | None:
    value = consts.value(name)
    if value is None or value.size != 1 or not test(float(value.reshape(-1)[0])):
        return None
    return float(value.reshape(-1)[0])


def _find(model: onnx.ModelProto) -> list[Match]:
    graph = model.graph
    readers, consts = consumers(graph), ConstantLookup(graph)
    outputs = {o.name for o in graph.output}
    found = []
    for node in graph.node:
        if node.op_type == "ReduceMean":
            match = _match(node, readers, consts)
            if match is not None and not outputs.intersection(
                    o for n in match.nodes[:-1] for o in n.output):
                found.append(match)
    return found


def _match(mean: onnx.NodeProto, readers: Readers, consts: ConstantLookup) -> Match | None:
    x, axes = mean.input[0], _axes(mean, consts)
    sub = _single(readers, mean.output[0], "Sub")
    if axes is None or sub is None or list(sub.input) != [x, mean.output[0]]:
        return None
    d = sub.output[0]
    users = readers.get(d, [])
    square = next((u for u in users if u.op_type == "Pow" or (
        u.op_type == "Mul" and list(u.input) == [d, d])), None)
    if len(users) != 2 or square is None or (square.op_type == "Pow" and _scalar(
            consts, square.input[1], lambda p: p == 2.0) is None):
        return None
    scale = next(u for u in users if u is not square)
    var = _single(readers, square.output[0], "ReduceMean")
    if var is None or _axes(var, consts) != axes:
        return None
    add = _single(readers, var.output[0], "Add")
    eps = None if add is None else _scalar(consts, _other(add, var.output[0]), lambda e: e >= 0)
    sqrt = None if add is None else _single(readers, add.output[0], "Sqrt")
    if eps is None or sqrt is None or add is None:
        return None
    chain = [mean, sub, square, var, add, sqrt]
    if scale.op_type == "Div" and list(scale.input) == [d, sqrt.output[0]]:
        chain.append(scale)
    else:
        inverse = _single(readers, sqrt.output[0], "Reciprocal")
        if inverse is None or scale.op_type != "Mul" or set(scale.input) != {d, inverse.output[0]}:
            return None
        chain += [inverse, scale]
    return _affine(Match(x, axes, eps, chain, None, None, scale.output[0]), readers, consts)


def _affine(match: Match, readers: Readers, consts: ConstantLookup) -> Match:
    """Extend the match with ``Mul γ`` and ``Add β`` by constants."""
    for op, field in (("Mul", "gamma"), ("Add", "beta")):
        node = _single(readers, match.out, op)
        if node is None:
            return match
        value = consts.value(_other(node, match.out))
        if value is None or (op == "Mul" and match.beta is not None):
            return match
        setattr(match, field, np.asarray(value, np.float32))
        match.nodes.append(node)
        match.out = node.output[0]
    return match


def _replace(graph: onnx.GraphProto, match: Match, dims: list[int | None] | None) -> None:
    """Put one LayerNormalization where the match's first node was and drop the rest."""
    rank = None if dims is None else len(dims)
    axes = sorted(a if a < 0 or rank is None else a - rank for a in match.axes)
    if axes != list(range(-len(axes), 0)):
        return  # not the trailing axes: LayerNormalization cannot express it
    shape = _normalized_shape(match, len(axes), dims)
    if shape is None:
        return
    names = []
    for value, default, hint in ((match.gamma, 1.0, "gamma"), (match.beta, 0.0, "beta")):
        try:
            full = np.broadcast_to(value if value is not None else np.float32(default), shape)
        except ValueError:
            return  # γ/β broadcast beyond the normalised axes
        name = unique_name(graph, f"{match.out}_ln_{hint}")
        graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(full, np.float32), name))
        names.append(name)
    fused = helper.make_node("LayerNormalization", [match.x, *names], [match.out],
                             name=unique_name(graph, f"{match.out}_layernorm"),
                             axis=axes[0], epsilon=match.eps)
    index = list(graph.node).index(match.nodes[0])
    for node in match.nodes:
        graph.node.remove(node)
    graph.node.insert(index, fused)


def _normalized_shape(match: Match, count: int, dims: list[int | None] | None
                      ) -> tuple[int, ...] | None:
    """The normalised dims: x's trailing static dims, else γ's or β's trailing dims."""
    if dims is not None and all(isinstance(d, int) and d > 0 for d in dims[-count:]):
        return tuple(int(d) for d in dims[-count:])  # type: ignore[arg-type]
    for value in (match.gamma, match.beta):
        if value is not None and value.ndim >= count and all(
                d > 1 for d in value.shape[-count:]):
            return tuple(value.shape[-count:])
    return None
