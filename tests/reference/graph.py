"""The reference's view of an ONNX graph: nodes in topological order, constants, producers, and
the structural questions of the spec (the input layer's raw region, rule 4.3; the residual
shortcut, rule 4.7), answered with the ops' traits (``tests/reference/registry.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from tests.reference import registry
from tests.reference.onnx_args import attrs
from tests.reference.registry import Node


@dataclass
class Graph:
    """A parsed ONNX graph: nodes in topological order, constants, producers, I/O names."""

    model: onnx.ModelProto
    nodes: list[onnx.NodeProto] = field(init=False)
    inits: dict[str, np.ndarray] = field(init=False)
    const: set[str] = field(init=False)
    producer: dict[str, int] = field(init=False)
    input_name: str = field(init=False)
    output_name: str = field(init=False)
    opset: int = field(init=False)

    def __post_init__(self) -> None:
        g = self.model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.input_name = next(i.name for i in g.input if i.name not in self.inits)
        self.output_name = g.output[0].name
        opsets = self.model.opset_import
        self.opset = next((o.version for o in opsets if o.domain in ("", "ai.onnx")), 13)
        self.nodes = _toposort(list(g.node), {self.input_name, *self.inits})
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.output}
        self.const = set(self.inits)
        for n in self.nodes:  # a node without inputs (Constant) is constant too
            if all(i in self.const for i in n.input if i):
                self.const.update(n.output)

    def data_inputs(self, node: onnx.NodeProto) -> list[str]:
        """The node's non-constant inputs."""
        return [i for i in node.input if i and i not in self.const]

    def pos(self, name: str) -> int:
        """Topological position of a tensor (its producer's index; -1 for graph inputs)."""
        return self.producer.get(name, -1)

    def readers(self, name: str) -> list[onnx.NodeProto]:
        """The nodes that read ``name``."""
        return [n for n in self.nodes if name in n.input]

    def producer_op(self, name: str) -> str | None:
        """The op type that produces ``name`` (None for graph inputs and initializers)."""
        return self.nodes[self.producer[name]].op_type if name in self.producer else None

    def node(self, proto: onnx.NodeProto, dtype: torch.dtype) -> Node:
        """The node as the op references see it."""
        return Node(proto, attrs(proto), self.opset, dtype)


def _toposort(nodes: list[onnx.NodeProto], known: set[str]) -> list[onnx.NodeProto]:
    """Kahn's algorithm; keeps the file order where it is already topological."""
    done, ordered, pending = set(known), [], list(nodes)
    while pending:
        ready = [n for n in pending if all(not i or i in done for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an undefined input")
        for n in ready:
            done.update(n.output)
        ordered += ready
        pending = [n for n in pending if n not in ready]
    return ordered


def _is_linear(node: onnx.NodeProto) -> bool:
    return registry.has_trait(node.op_type, "linear")


def raw_tensors(graph: Graph) -> set[str]:
    """Tensors reached from the model input without passing a linear layer (rule 4.3 applies
    to a Conv whose data input is one of them)."""
    raw = {graph.input_name}
    for node in graph.nodes:
        if not _is_linear(node) and any(i in raw for i in graph.data_inputs(node)):
            raw.update(node.output)
    return raw


def _ancestors(graph: Graph, name: str) -> set[str]:
    """``name`` and every non-constant tensor it depends on."""
    seen, stack = set(), [name]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in graph.producer:
            stack += graph.data_inputs(graph.nodes[graph.producer[t]])
    return seen


def _linear_counts_from(graph: Graph, fork: str) -> dict[str, int]:
    """For every tensor downstream of ``fork``: the largest number of linear layers on a path
    from ``fork`` to it."""
    counts = {fork: 0}
    for node in graph.nodes[graph.pos(fork) + 1:]:
        seen = [counts[i] for i in node.input if i in counts]
        if seen:
            c = max(seen) + _is_linear(node)
            counts.update({o: c for o in node.output})
    return counts


def residual_choice(graph: Graph, a: str, b: str) -> str:
    """Rule 4.7 ``residual``: ``'a'`` or ``'b'`` (the operand that receives all of R: the one
    with more linear layers from the nearest common ancestor), or ``'share'``."""
    common = _ancestors(graph, a) & _ancestors(graph, b)
    if not common:
        return "share"
    fork = max(common, key=graph.pos)
    counts = _linear_counts_from(graph, fork)
    ca, cb = counts[a], counts[b]
    return "share" if ca == cb else ("a" if ca > cb else "b")
