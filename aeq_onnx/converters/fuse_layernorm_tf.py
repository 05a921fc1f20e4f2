"""TF LayerNorm pass: fuse Keras' moments + batch-norm-style affine into one LayerNormalization.

tf2onnx writes Keras' ``LayerNormalization`` as TensorFlow computes it: ``m = ReduceMean(x)``,
``v = ReduceMean((x - m)²)`` (``m`` possibly through a shape-keeping Reshape), ``s = γ ·
Reciprocal(Sqrt(v + eps))`` (γ optional), then ``y = x·s + (−m·s + β)`` (``Neg(m)·s``, ``+ β``
optional) or ``y = x·s + (β − m·s)``. That is ``(x − m)/σ · γ + β`` = ``LayerNormalization(x, γ,
β, epsilon)`` over the reduced axes. Where those are not the trailing axes (Keras normalises
channels-last, tf2onnx moved the tensor to NCHW), the op runs between two Transposes that bring
them last and back. Fused only when every intermediate has no other reader and γ, β, eps are
constants that vary along the normalised axes only; anything else stays as it was.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from aeq_onnx.converters._graph_utils import (
    ConstantLookup,
    consumers,
    copy_model,
    default_opset,
    has_op,
    prune,
    set_ir_version,
    unique_name,
)
from aeq_onnx.converters.fuse_layernorm import Match as TfMatch
from aeq_onnx.converters.fuse_layernorm import (
    Readers,
    _axes,
    _other,
    _scalar,
    _shapes,
    _single,
)

Shapes = dict[str, list[int | None]]


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each Keras/TF decomposed LayerNorm by one LayerNormalization (opset >= 17)."""
    if not has_op(model, "ReduceMean") or (default_opset(model) or 0) < 17:
        return model
    shapes = _shapes(model)
    matches = _find(model.graph, shapes)
    if not matches:
        return model
    model = copy_model(model)
    graph, changed = model.graph, False
    made = {n.output[0]: n for n in graph.node if n.output}
    for match in matches:  # the same nodes in the copy (outputs are unique in a graph)
        match.nodes = [made[n.output[0]] for n in match.nodes]
    for match in matches:
        changed |= _replace(graph, match, shapes.get(match.x))
    if not changed:
        return model
    prune(graph)
    return set_ir_version(model)


def _find(graph: onnx.GraphProto, shapes: Shapes) -> list[TfMatch]:
    readers, consts = consumers(graph), ConstantLookup(graph)
    outputs = {o.name for o in graph.output}
    found = []
    for node in graph.node:
        if node.op_type == "ReduceMean":
            match = _match(node, readers, consts, shapes)
            if match is not None and not outputs.intersection(
                    o for n in match.nodes[:-1] for o in n.output):
                found.append(match)
    return found


def _same_shape_reshape(node: onnx.NodeProto, consts: ConstantLookup, shapes: Shapes) -> bool:
    """A Reshape that gives its input's own shape back (tf2onnx's ``[-1, 1, H, W]``)."""
    target, dims = consts.value(node.input[1]), shapes.get(node.input[0])
    if target is None or dims is None or target.size != len(dims):
        return False
    free = [d is None for d in dims]
    return sum(free) <= 1 and all(
        int(t) == -1 if d is None else int(t) == d
        for t, d in zip(target.reshape(-1), dims, strict=True))


def _match(mean: onnx.NodeProto, readers: Readers, consts: ConstantLookup, shapes: Shapes
           ) -> TfMatch | None:
    x, axes, m = mean.input[0], _axes(mean, consts), mean.output[0]
    users = readers.get(m, [])
    if axes is None or len(users) != 2:
        return None
    centre = next((u for u in users if u.op_type in ("Sub", "Reshape")), None)
    shift = next((u for u in users if u is not centre), None)
    if centre is None or shift is None or shift.op_type not in ("Neg", "Mul"):
        return None
    chain = [mean]
    if centre.op_type == "Reshape":
        if not _same_shape_reshape(centre, consts, shapes):
            return None
        chain.append(centre)
        centre = _single(readers, centre.output[0], "Sub")
        if centre is None:
            return None
    if list(centre.input) != [x, chain[-1].output[0]]:
        return None
    d = centre.output[0]
    square = _single(readers, d, ("Mul", "Pow"))
    if square is None or (square.op_type == "Mul" and list(square.input) != [d, d]) or (
            square.op_type == "Pow" and _scalar(consts, square.input[1], lambda p: p == 2.0)
            is None):
        return None
    var = _single(readers, square.output[0], "ReduceMean")
    if var is None or _axes(var, consts) != axes:
        return None
    add = _single(readers, var.output[0], "Add")
    eps = None if add is None else _scalar(consts, _other(add, var.output[0]), lambda e: e >= 0)
    sqrt = None if add is None else _single(readers, add.output[0], "Sqrt")
    inverse = None if sqrt is None else _single(readers, sqrt.output[0], "Reciprocal")
    if add is None or eps is None or sqrt is None or inverse is None:
        return None
    chain += [centre, square, var, add, sqrt, inverse]
    match = TfMatch(x, axes, eps, chain, None, None, inverse.output[0])
    return _scaled(match, shift, readers, consts)


def _scaled(match: TfMatch, shift: onnx.NodeProto, readers: Readers, consts: ConstantLookup
            ) -> TfMatch | None:
    """The rest: ``s = r·γ``; ``y = x·s + (Neg(m)·s [+ β])`` or ``x·s + (β − m·s)``."""
    scale = _single(readers, match.out, "Mul")
    if scale is not None and consts.value(_other(scale, match.out)) is not None:
        match.gamma = np.asarray(consts.value(_other(scale, match.out)), np.float32)
        match.nodes.append(scale)
        match.out = scale.output[0]
    s, m = match.out, match.nodes[0].output[0]
    users = readers.get(s, [])
    if len(users) != 2 or any(u.op_type != "Mul" for u in users):
        return None
    x_s = next((u for u in users if set(u.input) == {match.x, s}), None)
    if shift.op_type == "Neg":
        m_s = next((u for u in users if set(u.input) == {shift.output[0], s}), None)
        tail = None if m_s is None else _single(readers, m_s.output[0], ("Add",))
    else:
        m_s = shift if set(shift.input) == {m, s} else None
        tail = None if m_s is None else _single(readers, m_s.output[0], ("Sub",))
    if x_s is None or m_s is None or x_s is m_s or (
            shift is not m_s and _single(readers, shift.output[0], "Mul") is not m_s):
        return None
    nodes = [shift, x_s, m_s] if shift is not m_s else [x_s, m_s]
    offset = m_s.output[0]
    if tail is not None and tail.op_type == "Add" and \
            consts.value(_other(tail, offset)) is not None:
        match.beta = np.asarray(consts.value(_other(tail, offset)), np.float32)
    elif tail is not None and tail.op_type == "Sub" and list(tail.input)[1] == offset and \
            consts.value(tail.input[0]) is not None:
        match.beta = np.asarray(consts.value(tail.input[0]), np.float32)
    elif shift.op_type == "Mul":
        return None  # x·s + m·s is no LayerNorm
    if match.beta is not None:
        nodes.append(tail)  # type: ignore[arg-type]
        offset = tail.output[0]  # type: ignore[union-attr]
    final = _single(readers, x_s.output[0], "Add")
    if final is None or set(final.input) != {x_s.output[0], offset}:
        return None
    match.nodes += [*nodes, final]
    match.out = final.output[0]
    return match


def _vector(value: np.ndarray | None, axes: list[int], dims: list[int | None]
            ) -> np.ndarray | bool | None:
    """γ or β as the normalised dims' array; False where it varies along another axis."""
    if value is None:
        return None
    rank = len(dims)
    if value.ndim > rank:
        return False
    full = value.reshape((1,) * (rank - value.ndim) + value.shape)
    if any(full.shape[a] != 1 for a in range(rank) if a not in axes):
        return False
    shape = tuple(int(dims[a]) for a in axes)  # type: ignore[arg-type]
    try:
        return np.ascontiguousarray(np.broadcast_to(
            full.reshape([full.shape[a] for a in axes]), shape), np.float32)
    except ValueError:
        return False


def _replace(graph: onnx.GraphProto, match: TfMatch, dims: list[int | None] | None) -> bool:
    """Put [Transpose,] LayerNormalization[, Transpose] where the match was; False if it can't."""
    if dims is None:
        return False
    rank = len(dims)
    axes = sorted({a % rank for a in match.axes})
    if any(not isinstance(dims[a], int) or dims[a] <= 0 for a in axes):  # type: ignore[operator]
        return False
    params = []
    for value, default, hint in ((match.gamma, 1.0, "gamma"), (match.beta, 0.0, "beta")):
        vector = _vector(value, axes, dims)
        if vector is False:
            return False
        if vector is None:
            vector = np.full([dims[a] for a in axes], default, np.float32)  # type: ignore[misc]
        name = unique_name(graph, f"{match.out}_ln_{hint}")
        graph.initializer.append(numpy_helper.from_array(vector, name))  # type: ignore[arg-type]
        params.append(name)
    perm = [a for a in range(rank) if a not in axes] + axes
    new, src = [], match.x
    if perm != list(range(rank)):
        src = unique_name(graph, f"{match.out}_ln_last")
        new.append(helper.make_node("Transpose", [match.x], [src], perm=perm,
                                    name=unique_name(graph, f"{match.out}_ln_to_last")))
    normed = match.out if not new else unique_name(graph, f"{match.out}_ln_normed")
    new.append(helper.make_node("LayerNormalization", [src, *params], [normed],
                                name=unique_name(graph, f"{match.out}_layernorm"),
                                axis=rank - len(axes), epsilon=match.eps))
    if src != match.x:
        back = [int(a) for a in np.argsort(perm)]
        new.append(helper.make_node("Transpose", [normed], [match.out], perm=back,
                                    name=unique_name(graph, f"{match.out}_ln_back")))
    index = list(graph.node).index(match.nodes[0])
    for node in match.nodes:
        graph.node.remove(node)
    for offset, node in enumerate(new):
        graph.node.insert(index + offset, node)
    return True
