"""Walking an untrusted model: every tensor and node it stores, subgraphs and functions
included, and the check that its strings are valid UTF-8."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx
from google.protobuf.message import Message
from onnx import TensorProto

from aeq_onnx.errors import ModelLoadError


def all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in the model: initializers and attribute tensors, subgraphs included."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[onnx.TensorProto]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield from (attr.sparse_tensor.values, attr.sparse_tensor.indices)
        for graph in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
            yield from _graph_tensors(graph)


def all_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node: the graph's, its subgraphs' and the model-local functions'."""
    yield from _walk_nodes(model.graph.node)
    for function in model.functions:
        yield from _walk_nodes(function.node)


def _walk_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    for node in nodes:
        yield node
        for attr in node.attribute:
            for graph in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from _walk_nodes(graph.node)


def check_strings(model: onnx.ModelProto, label: str) -> None:
    """Refuse string fields that are not valid UTF-8 (proto2 hands them to Python as bytes,
    which later code does not expect); tensor payloads are not walked."""
    stack: list[Message] = [model]
    while stack:
        message = stack.pop()
        if isinstance(message, onnx.TensorProto):
            fields = [(TensorProto.DESCRIPTOR.fields_by_name[n], getattr(message, n))
                      for n in ("name", "doc_string")]
            stack.extend(message.external_data)
        else:
            fields = message.ListFields()
        for field, value in fields:
            values = value if field.is_repeated else [value]
            if field.type == field.TYPE_STRING:
                if any(isinstance(v, bytes) for v in values):
                    raise ModelLoadError(
                        f"{label} holds a {field.full_name} that is not valid UTF-8")
            elif field.type == field.TYPE_MESSAGE:
                stack.extend(values)


def named_tensors(model: onnx.ModelProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """Every stored tensor with the name a user knows it by (a Constant's output name)."""
    for tensor in model.graph.initializer:
        yield tensor.name, tensor
    for sparse in model.graph.sparse_initializer:
        yield sparse.values.name, sparse.values
    for node in all_nodes(model):
        for attr in node.attribute:
            if attr.HasField("t"):
                constant = node.op_type == "Constant" and node.output
                yield (node.output[0] if constant else attr.t.name or attr.name), attr.t
            for tensor in attr.tensors:
                yield tensor.name or attr.name, tensor
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values.name or attr.name, attr.sparse_tensor.values
