"""LRN pass: fuse PyTorch's export of ``nn.LocalResponseNorm`` back into one ONNX LRN node.

PyTorch writes ``local_response_norm(x, size, alpha, beta, k)`` as::

    s = x · x -> [N, 1, C, H, W] (Reshape/Unsqueeze) -> Pad (channels) -> AveragePool
        [size, 1, 1] -> [N, C, H, W] (Reshape/Squeeze)
    y = x / (s · alpha + k) ^ beta

which is ONNX's ``LRN(size, alpha, beta, bias=k)`` when the window is centred (odd ``size``:
``(size-1)/2`` zero channels padded on each side). The fused node explains like any LRN
(pass-through, docs/choices.md); anything else is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from aeq_onnx.converters._graph_utils import (
    DEFAULT_DOMAINS,
    ConstantLookup,
    attr_int,
    attr_ints,
    attr_str,
    consumers,
    copy_model,
    has_op,
    producers,
    prune,
    set_ir_version,
)

#: Ops that only move the squares between [N, C, H, W] and [N, 1, C, H, W] (or pad them).
_PLUMBING = ("Reshape", "Unsqueeze", "Squeeze", "Pad")


@dataclass
class _Match:
    """One recognised LRN: its input, output, parameters and the nodes it replaces."""

    x: str
    y: str
    size: int
    alpha: float
    beta: float
    bias: float
    nodes: list[onnx.NodeProto]


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each torch LRN decomposition (x / (k + α·avgpool(x²))^β) by one LRN node."""
    if not has_op(model, "Div", "AveragePool", "Pow"):
        return model
    graph = model.graph
    reader = _Reader(graph)
    matches = [m for node in graph.node if node.op_type == "Div"
               and (m := _match(reader, node)) is not None]
    if not matches:
        return model
    model = copy_model(model)
    graph = model.graph
    for match in matches:
        _replace(graph, match)
    prune(graph)
    return set_ir_version(model)


class _Reader:
    """Producers, constants and inferred shapes of one graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.writers = producers(graph)
        self.readers = consumers(graph)
        self.outputs = {o.name for o in graph.output}
        self.consts = ConstantLookup(graph)
        self.shapes = {v.name: v.type.tensor_type.shape for v in
                       (*graph.value_info, *graph.input, *graph.output)}

    def node(self, name: str, op: str) -> onnx.NodeProto | None:
        node = self.writers.get(name)
        return node if node is not None and node.op_type == op and \
            node.domain in DEFAULT_DOMAINS else None

    def scalar(self, name: str) -> float | None:
        value = self.consts.value(name)
        return float(value) if value is not None and value.size == 1 else None

    def dims(self, name: str) -> list[int | None] | None:
        """Non-batch dims (None where unknown), or None without a shape."""
        shape = self.shapes.get(name)
        if shape is None or not shape.dim:
            return None
        return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim[1:]]


def _scaled(reader: _Reader, name: str, op: str) -> tuple[str, float] | None:
    """``(t, c)`` when ``name = op(t, c)`` or ``op(c, t)`` with a constant scalar ``c``."""
    node = reader.node(name, op)
    if node is None or len(node.input) != 2:
        return None
    for i in (0, 1):
        value = reader.scalar(node.input[1 - i])
        if value is not None:
            return node.input[i], value
    return None


def _match(reader: _Reader, div: onnx.NodeProto) -> _Match | None:
    """The LRN whose last node is ``div``, or None."""
    x, denominator = div.input[0], div.input[1]
    pow_node = reader.node(denominator, "Pow")
    beta = None if pow_node is None else reader.scalar(pow_node.input[1])
    added = None if pow_node is None else _scaled(reader, pow_node.input[0], "Add")
    scaled = None if added is None else _scaled(reader, added[0], "Mul")
    if pow_node is None or beta is None or added is None or scaled is None:
        return None
    found = _window(reader, scaled[0], x)
    if found is None:
        return None
    size, chain = found
    nodes = [div, pow_node, reader.writers[pow_node.input[0]], reader.writers[added[0]], *chain]
    if not _private(reader, nodes, div):
        return None
    return _Match(x, div.output[0], size, scaled[1], beta, added[1], nodes)


def _window(reader: _Reader, name: str, x: str) -> tuple[int, list[onnx.NodeProto]] | None:
    """``(size, nodes)`` when ``name`` is a centred channel-window mean of ``x · x``."""
    chain: list[onnx.NodeProto] = []
    pool: onnx.NodeProto | None = None
    pads = np.zeros(10, np.int64)
    node = reader.writers.get(name)
    while node is not None and node.op_type in (*_PLUMBING, "AveragePool"):
        if node.op_type == "AveragePool":
            if pool is not None:
                return None
            pool = node
        elif node.op_type == "Pad":
            got = _pads(reader, node)
            if got is None:
                return None
            pads += got
        chain.append(node)
        node = reader.writers.get(node.input[0])
    if node is None or node.op_type != "Mul" or list(node.input) != [x, x] or pool is None:
        return None
    chain.append(node)
    size = _pool_size(reader, pool, x)
    if size is None or size % 2 == 0 or reader.dims(name) != reader.dims(x):
        return None
    want = np.zeros(10, np.int64)
    want[2] = want[7] = (size - 1) // 2  # begin and end of the channel axis of [N, 1, C, H, W]
    return (size, chain) if np.array_equal(pads, want) else None


def _pads(reader: _Reader, pad: onnx.NodeProto) -> np.ndarray | None:
    """A constant-mode, zero-valued Pad's pads on a 5-D tensor, or None."""
    if attr_str(pad, "mode", "constant") != "constant":
        return None
    if len(pad.input) > 1 and pad.input[1]:
        pads = reader.consts.value(pad.input[1])
        value = reader.scalar(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else 0.0
        if len(pad.input) > 3 and pad.input[3]:
            return None  # explicit axes (opset 18)
    else:
        ints = attr_ints(pad, "pads")
        pads = None if ints is None else np.asarray(ints, np.int64)
        value = 0.0
        for attr in pad.attribute:
            if attr.name == "value":
                value = float(attr.f)
    if pads is None or pads.shape != (10,) or value != 0.0:
        return None
    return pads.astype(np.int64)


def _pool_size(reader: _Reader, pool: onnx.NodeProto, x: str) -> int | None:
    """The window of an AveragePool over the channel axis of ``[N, 1, C, H, W]``, or None."""
    kernel = attr_ints(pool, "kernel_shape") or []
    plain = (all(v == 1 for v in attr_ints(pool, "strides") or [1])
             and not any(attr_ints(pool, "pads") or [0])
             and all(v == 1 for v in attr_ints(pool, "dilations") or [1])
             and attr_str(pool, "auto_pad", "NOTSET") in ("NOTSET", "VALID")
             and attr_int(pool, "ceil_mode", 0) == 0)
    dims, x_dims = reader.dims(pool.output[0]), reader.dims(x)
    if len(kernel) != 3 or kernel[1:] != [1, 1] or not plain or dims is None or x_dims is None:
        return None
    return kernel[0] if dims == [1, *x_dims] else None


def _private(reader: _Reader, nodes: list[onnx.NodeProto], last: onnx.NodeProto) -> bool:
    """True when no tensor inside the pattern (but its output) is read elsewhere."""
    inside = {n.output[0] for n in nodes}
    for node in nodes:
        if node.output[0] == last.output[0]:
            continue
        for name in node.output:
            if name in reader.outputs or any(r.output[0] not in inside
                                             for r in reader.readers.get(name, [])):
                return False
    return True


def _replace(graph: onnx.GraphProto, match: _Match) -> None:
    """Put one LRN node where the pattern's Div was and drop the pattern's nodes."""
    names = {n.output[0] for n in match.nodes}
    position = min(i for i, n in enumerate(graph.node) if n.output[0] in names)
    lrn = helper.make_node("LRN", [match.x], [match.y], name=f"{match.y}/lrn", size=match.size,
                           alpha=match.alpha, beta=match.beta, bias=match.bias)
    kept = [n for n in graph.node if n.output[0] not in names]
    kept.insert(position, lrn)
    del graph.node[:]
    graph.node.extend(kept)
