"""Node order: a graph that is valid except for the order of its nodes (onnxruntime's fp16
converter writes such graphs) is put in topological order before it is checked; a graph whose
nodes depend on each other in a cycle is refused."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import onnx

from aeq_onnx.errors import ModelLoadError

#: How many nodes of a cycle the error names.
SHOWN = 4


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.HasField("g"):
            yield attr.g
        yield from attr.graphs


def _outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from enclosing scopes (read but not defined inside it)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    read: set[str] = set()
    for node in graph.node:
        defined.update(node.output)
        read.update(node.input)
        for sub in _subgraphs(node):
            read |= _outer_names(sub)
    return {name for name in read if name} - defined


def needs(node: onnx.NodeProto) -> set[str]:
    """Every tensor ``node`` reads, its subgraphs' outer-scope reads included."""
    names = {name for name in node.input if name}
    for sub in _subgraphs(node):
        names |= _outer_names(sub)
    return names


def _kahn(nodes: list[onnx.NodeProto]) -> tuple[list[int], list[int]]:
    """Kahn's algorithm, stable (file order among ready nodes): the order found and the
    indices of the nodes left waiting on each other (a cycle), empty when none."""
    writer = {name: i for i, node in enumerate(nodes) for name in node.output if name}
    waits: list[set[int]] = [{writer[n] for n in needs(node) if n in writer} - {i}
                             for i, node in enumerate(nodes)]
    selfish = {i for i, node in enumerate(nodes) if needs(node) & set(node.output)}
    readers: dict[int, list[int]] = {}
    for i, deps in enumerate(waits):
        for dep in deps:
            readers.setdefault(dep, []).append(i)
    ready = deque(i for i, deps in enumerate(waits) if not deps and i not in selfish)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for reader in readers.get(i, []):
            waits[reader].discard(i)
            if not waits[reader] and reader not in selfish:
                ready.append(reader)
    placed = set(order)
    return order, [i for i in range(len(nodes)) if i not in placed]


def sort_nodes(model: onnx.ModelProto, label: str) -> bool:
    """Put the main graph's nodes in topological order, in place (file order kept where it is
    already topological); True when anything moved. A cycle is a :class:`ModelLoadError`
    naming some of its nodes."""
    nodes = model.graph.node
    written = [name for node in nodes for name in node.output if name]
    if len(written) != len(set(written)):
        return False  # a tensor written twice is no question of order: the checker refuses it
    order, stuck = _kahn(list(nodes))
    if stuck:
        names = [nodes[i].name or f"{nodes[i].op_type}#{i}" for i in stuck[:SHOWN]]
        more = f" and {len(stuck) - SHOWN} more" if len(stuck) > SHOWN else ""
        raise ModelLoadError(f"{label} has a cycle: nodes {', '.join(names)}{more} depend on "
                             "each other's outputs")
    if order == list(range(len(nodes))):
        return False
    sorted_nodes = [nodes[i] for i in order]
    kept = [onnx.NodeProto() for _ in sorted_nodes]
    for copy, node in zip(kept, sorted_nodes, strict=True):
        copy.CopyFrom(node)
    del nodes[:]
    nodes.extend(kept)
    return True
