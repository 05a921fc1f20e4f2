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
from aeq_onnx.ir import tokens
from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.samples import Layouts
from aeq_onnx.ir.traits import DENSE, LINEAR, SOFTMAX, WINDOW_POOL


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
    #: The split's axes that AE's initial map averages the gradient over; None: a CNN's map
    #: (every axis after the channels, sample axis first: spec section 3).
    split_axes: tuple[int, ...] | None = None
    #: A token model (:mod:`aeq_onnx.ir.tokens`): constants absorb, token join rule.
    token_model: bool = False
    #: The body's nodes that relevance can reach (the rest only feed gates, e.g. Q·Kᵀ).
    relevance_body: tuple[gs.Node, ...] = ()
    #: Every tensor's layout and sample axis (ae-tokens T1).
    layouts: Layouts | None = None


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
    """True for a node taking a rank-4 map with H·W > 1 to rank < 4 or to 1x1 (spec 2); a
    permutation of the dims never collapses anything (channels-last [N, 1, 1, C] ->
    [N, C, 1, 1])."""
    if not node.inputs or not node.outputs:
        return False
    shape_in = view.shape(node.inputs[0].name)
    spatial_in = _spatial(shape_in)
    out = view.shape(node.outputs[0].name)
    if shape_in is not None and out is not None and sorted(map(str, shape_in)) == sorted(
            map(str, out)):
        return False
    if spatial_in is None or spatial_in <= 1 or out is None:
        return False
    return len(out) < 4 or _spatial(out) == 1


def default_split(view: GraphView, logits: str, layouts: Layouts | None = None
                  ) -> tuple[str, tuple[int, ...] | None]:
    """The spec's split tensor: the input of the last node that collapses the spatial map
    (section 2, before its pools), or the token axes (ae-tokens T2: the class-token
    Gather/Slice, a mean over tokens); with the axes R0 averages over (None: a CNN map)."""
    upstream = view.ancestors([logits])
    chain = [n for n in view.nodes if n.outputs and n.outputs[0].name in upstream]
    for node in reversed(chain):
        axes = None if layouts is None else tokens.collapse_axes(view, layouts, node)
        if axes is not None:
            return node.inputs[0].name, axes
        if _collapses_space(view, node) and (
                layouts is None or layouts.sample_axis(node.inputs[0].name) in (0, None)):
            split = node.inputs[0].name
            producer = view.producer(split)
            while producer is not None and WINDOW_POOL in view.traits(producer):
                split = producer.inputs[0].name
                producer = view.producer(split)
            return split, None
    for node in reversed(chain):
        if DENSE in view.traits(node):
            return node.inputs[0].name, None
    raise UnsupportedModelError("no spatial stage and no dense layer: cannot pick a split tensor")


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


def _relevance_reach(view: GraphView, body: list[gs.Node], split: str) -> tuple[gs.Node, ...]:
    """The body's nodes that relevance reaches from the split through the rules' relevance
    edges (``view.relevance_edges``; e.g. softmax probabilities and a GELU gate get none)."""
    edges = view.relevance_edges or view.data_edges
    reached, kept = {split}, []
    for node in reversed(body):
        if any(t.name in reached for t in node.outputs):
            kept.append(node)
            reached.update(node.inputs[i].name for i in edges(node))
    return tuple(reversed(kept))


def _split_axes(view: GraphView, layouts: Layouts, split: str) -> tuple[int, ...] | None:
    """The axes R0 averages over at a user's split: None (a CNN map: every axis after the
    channels) when the sample axis is first and the channels second, else the token axes."""
    layout = layouts.layout(split)
    if layout is None or len(layout) <= 2:
        return None
    if layouts.sample_axis(split) in (0, None) and tokens.channel_axis(view, layouts,
                                                                       split) == 1:
        return None
    return tokens.token_axes(view, layouts, split)


def make_plan(view: GraphView, layer: str | None = None, output: str | None = None,
              layouts: Layouts | None = None) -> Plan:
    """Find the input, logits and split tensor, and the head and body chains between them."""
    layouts = layouts or Layouts(view)
    model_input = find_input(view)
    logits = find_logits(view, output)
    if layer is None:
        split, axes = default_split(view, logits, layouts)
    else:
        split, axes = layer, None
    if split not in view.tensors or view.is_constant(split):
        raise LayerError(f"layer '{split}' is not a tensor of the model")
    if split not in _downstream(view, model_input) or split not in view.ancestors([logits]):
        raise LayerError(f"layer '{split}' does not lie between the input and the logits")
    if layer is not None:
        axes = _split_axes(view, layouts, split)
    head, head_tensors = _chain(view, split, logits)
    body, body_tensors = _chain(view, model_input, split)
    token_model = tokens.is_token_model(view, body + head)
    return Plan(model_input, logits, split, head, body, frozenset(body_tensors),
                frozenset(head_tensors), _input_layers(view, model_input, body), axes,
                token_model, _relevance_reach(view, body, split), layouts)
