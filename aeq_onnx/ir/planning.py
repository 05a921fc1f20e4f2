"""Where to explain: the logits, the split tensor (spec section 2) and the two node chains.

The *head* runs from the split tensor to the logits and only carries gradients; the *body*
runs from the model input to the split tensor and carries relevance.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.converters.strip_identity import PASS_THROUGH_OPS
from aeq_onnx.errors import LayerError, UnsupportedModelError
from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.traits import DENSE, LINEAR, QUANTIZATION, SOFTMAX, WINDOW_POOL


@dataclass(frozen=True)
class Plan:
    """The tensors and node chains one explainer is built from."""

    input: str
    logits: str
    split: str
    head: list[gs.Node]
    body: list[gs.Node]
    body_tensors: frozenset[str]
    head_tensors: frozenset[str]
    input_layers: frozenset[str]


def find_input(view: GraphView) -> str:
    """The model's single data input."""
    inputs = view.data_inputs()
    if len(inputs) != 1:
        raise UnsupportedModelError(
            f"the model has {len(inputs)} data inputs ({', '.join(inputs)}); one image input needed"
        )
    return inputs[0]


def find_logits(view: GraphView, output: str | None = None) -> str:
    """The pre-softmax scores: the named (or only) output, or the input of a final Softmax."""
    outputs = view.outputs()
    if output is None:
        if len(outputs) != 1:
            raise UnsupportedModelError(
                f"the model has {len(outputs)} outputs ({', '.join(outputs)}); name one to explain"
            )
        output = outputs[0]
    elif output not in outputs:
        raise LayerError(f"'{output}' is not an output of the model ({', '.join(outputs)})")
    node = view.producer(output)
    logits = output
    if node is not None and SOFTMAX in view.traits(node):
        logits = node.inputs[0].name
    shape = view.shape(logits)
    if shape is None or len(shape) != 2 or not isinstance(shape[1], int):
        raise UnsupportedModelError(
            f"the logits '{logits}' must be [N, K] with static K, got {shape}")
    return logits


def _spatial(shape: tuple[object, ...] | None) -> int | None:
    """H·W of a rank-4 NCHW shape (None when not rank 4 or not static)."""
    if shape is None or len(shape) != 4 or not all(isinstance(d, int) for d in shape[2:]):
        return None
    return int(shape[2]) * int(shape[3])  # type: ignore[call-overload]


def _collapses_space(view: GraphView, node: gs.Node) -> bool:
    """True for a node taking a rank-4 map with H·W > 1 to rank < 4 or to 1x1 (spec 2)."""
    if not node.inputs or not node.outputs:
        return False
    spatial_in = _spatial(view.shape(node.inputs[0].name))
    out = view.shape(node.outputs[0].name)
    if spatial_in is None or spatial_in <= 1 or out is None:
        return False
    return len(out) < 4 or _spatial(out) == 1


def default_split(view: GraphView, logits: str) -> str:
    """The spec's split tensor: the input of the last space-collapsing node, before its pools."""
    upstream = view.ancestors([logits])
    chain = [n for n in view.nodes if n.outputs and n.outputs[0].name in upstream]
    for node in reversed(chain):
        if _collapses_space(view, node):
            return _before_pools(view, node.inputs[0].name)
    for node in reversed(chain):
        if DENSE in view.traits(node):
            return node.inputs[0].name
    raise UnsupportedModelError("no spatial stage and no dense layer: cannot pick a split tensor")


def _before_pools(view: GraphView, split: str) -> str:
    """Step back from ``split`` over window pools (spec 2), and over the quantizations of a
    quantized graph (QuantizeLinear / DequantizeLinear pairs) where a pool lies behind them."""
    while True:
        name, producer = split, view.producer(split)
        while producer is not None and QUANTIZATION in view.traits(producer):
            name = producer.inputs[0].name
            producer = view.producer(name)
        if producer is None or WINDOW_POOL not in view.traits(producer):
            return split
        split = producer.inputs[0].name


def _downstream(view: GraphView, start: str) -> set[str]:
    """Tensors reachable from ``start`` through data edges."""
    reached = {start}
    for node in view.nodes:
        if any(node.inputs[i].name in reached for i in view.data_edges(node)):
            reached.update(t.name for t in node.outputs)
    return reached


def _chain(view: GraphView, source: str, sink: str) -> tuple[list[gs.Node], set[str]]:
    """Nodes (topological order) and tensors on data paths from ``source`` to ``sink``."""
    tensors = _downstream(view, source) & view.ancestors([sink])
    nodes = [n for n in view.nodes if any(t.name in tensors for t in n.outputs)
             and any(n.inputs[i].name in tensors for i in view.data_edges(n))]
    return nodes, tensors


def _input_layers(view: GraphView, model_input: str, body: list[gs.Node]) -> frozenset[str]:
    """``linear`` nodes (by output name) with no ``linear`` node between them and the input
    (AE's dense rule does not depend on it; LRP gives a dense one the z^B rule)."""
    counts = view.layer_counts(model_input)
    return frozenset(
        n.outputs[0].name for n in body
        if LINEAR in view.traits(n) and counts.get(n.inputs[0].name) == 0
    )


def resolve_layer(original: onnx.ModelProto, view: GraphView, layer: str) -> str:
    """The canonical tensor holding the values of the user's ``layer`` of the original model.

    Canonicalisation removes Identity/Dropout outputs (their input holds the same values) and
    Conv outputs whose BatchNormalization was folded in (those values no longer exist).
    """
    writers = {o: n for n in original.graph.node for o in n.output}
    name = layer
    while (name not in view.tensors and name in writers
           and writers[name].op_type in PASS_THROUGH_OPS):
        name = writers[name].input[0]
    if name in view.tensors:
        return name
    if layer in writers:
        raise LayerError(f"layer '{layer}' was folded away before compiling (e.g. a Conv output "
                         "whose BatchNormalization was folded into the Conv): name the tensor "
                         "after the fold")
    raise LayerError(f"layer '{layer}' is not a tensor of the model")


def make_plan(view: GraphView, layer: str | None = None, output: str | None = None) -> Plan:
    """Find the input, logits and split tensor, and the head and body chains between them."""
    model_input = find_input(view)
    logits = find_logits(view, output)
    split = default_split(view, logits) if layer is None else layer
    if split not in view.tensors or view.is_constant(split):
        raise LayerError(f"layer '{split}' is not a tensor of the model")
    if split not in _downstream(view, model_input) or split not in view.ancestors([logits]):
        raise LayerError(f"layer '{split}' does not lie between the input and the logits")
    head, head_tensors = _chain(view, split, logits)
    body, body_tensors = _chain(view, model_input, split)
    return Plan(model_input, logits, split, head, body, frozenset(body_tensors),
                frozenset(head_tensors), _input_layers(view, model_input, body))
