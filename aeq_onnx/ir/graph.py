"""A read-only view of a canonical ONNX graph, built on onnx-graphsurgeon.

The compiler and the rules ask their questions here (producers, consumers, order, shapes,
constants) instead of walking protobufs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx_graphsurgeon.ir.tensor import LazyValues

from aeq_onnx.errors import UnsupportedModelError
from aeq_onnx.ir.traits import LINEAR, NONNEG_OUTPUT, SIGN_KEEPING, Traits, no_traits

Dim = int | str | None
#: Constants this large are read from their TensorProto on each use, never cached as numpy.
UNCACHED_BYTES = 1 << 20


class GraphView:
    """Producers, consumers, topological order, static shapes and constants of one model."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        #: Which inputs of a node carry data (set by the compiler from the rules).
        self.data_edges: Callable[[gs.Node], list[int]] = self.variable_inputs
        #: Which inputs a node sends relevance to (None: its data edges; set by the compiler).
        self.relevance_edges: Callable[[gs.Node], list[int]] | None = None
        #: A node's traits (:mod:`aeq_onnx.ir.traits`; set by the compiler from the rules).
        self.traits: Traits = no_traits
        self.graph = gs.import_onnx(model)
        self.graph.toposort()
        self.opset = next(
            (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0
        )
        self.nodes: list[gs.Node] = list(self.graph.nodes)
        self.tensors: dict[str, gs.Tensor] = self.graph.tensors()
        self._index = {id(n): i for i, n in enumerate(self.nodes)}
        self._producer: dict[str, gs.Node] = {}
        self._consumers: dict[str, list[gs.Node]] = {}
        for node in self.nodes:
            for t in node.outputs:
                self._producer[t.name] = node
            for t in node.inputs:
                if t.name:
                    self._consumers.setdefault(t.name, []).append(node)

    # ------------------------------------------------------------------------ basic questions
    def producer(self, name: str) -> gs.Node | None:
        """The node that outputs ``name`` (None for graph inputs and constants)."""
        return self._producer.get(name)

    def consumers(self, name: str) -> list[gs.Node]:
        """The nodes that read ``name``, in topological order."""
        return list(self._consumers.get(name, []))

    def position(self, node: gs.Node) -> int:
        """The node's index in topological order."""
        return self._index[id(node)]

    def is_constant(self, name: str) -> bool:
        """True for initializers (after constant folding every constant is one)."""
        return isinstance(self.tensors.get(name), gs.Constant)

    def constant(self, name: str) -> np.ndarray:
        """The value of a constant tensor.

        Small constants are cached on the graph as onnx-graphsurgeon does; a weight of at least
        :data:`UNCACHED_BYTES` is read afresh from its TensorProto on each call and lives only
        as long as the caller keeps it, so compiling holds no numpy copy of the model's weights
        beside the protos (docs/performance.md, "Session options, compile memory").
        """
        tensor = self.tensors[name]
        if not isinstance(tensor, gs.Constant):
            raise UnsupportedModelError(f"tensor '{name}' is not a constant")
        lazy = tensor._values  # gs caches on first .values: peek before
        if isinstance(lazy, LazyValues) and lazy.nbytes >= UNCACHED_BYTES:
            return np.asarray(lazy.load())
        return np.asarray(tensor.values)

    def shape(self, name: str) -> tuple[Dim, ...] | None:
        """The inferred shape, symbolic dims as strings, unknown as None."""
        tensor = self.tensors.get(name)
        if tensor is None or tensor.shape is None:
            return None
        return tuple(tensor.shape)

    def rank(self, name: str) -> int:
        """The tensor's rank; raises when shape inference could not tell."""
        shape = self.shape(name)
        if shape is None:
            raise UnsupportedModelError(f"the rank of tensor '{name}' is unknown")
        return len(shape)

    def static_dims(self, name: str) -> tuple[int, ...]:
        """Every non-batch dim as an int; raises when one is not static."""
        shape = self.shape(name)
        if shape is None or any(not isinstance(d, int) for d in shape[1:]):
            raise UnsupportedModelError(
                f"tensor '{name}' needs static non-batch dims, shape inference gave {shape}"
            )
        return tuple(int(d) for d in shape[1:])  # type: ignore[arg-type]

    def data_inputs(self) -> list[str]:
        """Graph inputs that are not initializers."""
        return [t.name for t in self.graph.inputs if not isinstance(t, gs.Constant)]

    def outputs(self) -> list[str]:
        """Graph output names."""
        return [t.name for t in self.graph.outputs]

    def variable_inputs(self, node: gs.Node) -> list[int]:
        """Indices of a node's inputs that are neither empty nor constant."""
        return [i for i, t in enumerate(node.inputs) if t.name and not self.is_constant(t.name)]

    # ----------------------------------------------------------------------- path questions
    def ancestors(self, names: Iterable[str]) -> set[str]:
        """Every tensor that ``names`` depend on through data edges (themselves included)."""
        seen: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            node = self.producer(name)
            if node is not None:
                stack.extend(node.inputs[i].name for i in self.data_edges(node))
        return seen

    def layer_counts(self, start: str, longest: bool = False) -> dict[str, int]:
        """For every tensor downstream of ``start``: the fewest (or most) ``linear`` nodes on a
        path from it."""
        pick = max if longest else min
        counts = {start: 0}
        begin = self.producer(start)
        first = self.position(begin) + 1 if begin is not None else 0
        for node in self.nodes[first:]:
            names = [node.inputs[i].name for i in self.data_edges(node)]
            reached = [counts[n] for n in names if n in counts]
            if not reached:
                continue
            value = pick(reached) + (1 if LINEAR in self.traits(node) else 0)
            for t in node.outputs:
                counts[t.name] = value
        return counts

    def fork(self, a: str, b: str) -> str | None:
        """The nearest tensor from which both ``a`` and ``b`` descend (latest in topo order)."""
        common = {
            n for n in self.ancestors([a]) & self.ancestors([b]) if not self.is_constant(n)
        }
        if not common:
            return None

        def order(name: str) -> int:
            node = self.producer(name)
            return self.position(node) if node is not None else -1

        return max(common, key=lambda n: (order(n), n))

    def is_nonnegative(self, name: str, depth: int = 8) -> bool:
        """True when ``name`` can never hold a negative value (a ReLU output, a pool of one...):
        its producer has the ``nonneg_output`` trait, or ``sign_keeping`` and only such inputs."""
        node = self.producer(name)
        if node is None or depth == 0:
            return False
        traits = self.traits(node)
        if NONNEG_OUTPUT in traits:
            return True
        if SIGN_KEEPING in traits:
            data = [node.inputs[i].name for i in self.data_edges(node)]
            return bool(data) and all(self.is_nonnegative(d, depth - 1) for d in data)
        return False
