"""The reference's op-independent core: run an ONNX graph with the registered op references,
pick the split tensor and R0, and walk relevance back to the input (spec sections 1-3, 5).

Nam & Lee, "Illuminating Salient Contributions in Neuron Activation with Attribution
Equilibrium", IEEE T-PAMI 2024; the rules are those of ``shared/docs/ae-rules.md``. Nothing
here knows an op: every forward and relevance rule comes from ``tests/reference/registry.py``
(the op references live in ``tests/rules/test_<op>.py``), and the structural questions of the
spec (the input layer, the residual shortcut, the split) ask the ops' traits. It shares no code
with ``aeq_onnx`` and never touches onnxruntime; each sample runs alone (section 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch

from tests.reference import registry
from tests.reference.formulas import bsum, sdiv, vjp
from tests.reference.graph import Graph, raw_tensors
from tests.reference.registry import Ins, Node

Tensor = torch.Tensor
Flows = list[tuple[str, Tensor]]


# ----------------------------------------------------------------------------- forward


def forward_node(node: Node, ins: Ins) -> Tensor | tuple[Tensor, ...]:
    """Evaluate one ONNX node with its registered forward function."""
    entry = registry.lookup(node.op)
    if entry is None:
        raise NotImplementedError(f"reference interpreter does not support {node.op}")
    return entry.forward(ins, node)


def run_forward(graph: Graph, x: Tensor) -> dict[str, Tensor]:
    """Run the graph on ``x`` (autograd on: every activation depends on ``x``)."""
    dtype = x.dtype
    env: dict[str, Tensor] = {}
    for name, arr in graph.inits.items():
        t = torch.from_numpy(np.array(arr))
        env[name] = t.to(dtype) if t.is_floating_point() else t
    env[graph.input_name] = x
    for proto in graph.nodes:
        out = forward_node(graph.node(proto, dtype), [env[i] if i else None for i in proto.input])
        outs = out if isinstance(out, tuple) else (out,)
        # optional outputs a forward does not produce stay unset (a KeyError where read)
        for name, value in zip(proto.output, outs, strict=False):
            if name:
                env[name] = value
    return env


# ----------------------------------------------------------------------------- split, R0


def logits_name(graph: Graph) -> str:
    """The logits: the model output, or the input of a final Softmax/LogSoftmax (section 3)."""
    idx = graph.producer.get(graph.output_name)
    if idx is not None and registry.has_trait(graph.nodes[idx].op_type, "softmax"):
        return graph.nodes[idx].input[0]
    return graph.output_name


def _is_spatial_collapse(x: Tensor, y: Tensor) -> bool:
    """Input rank 4 with H·W > 1, output of rank < 4 or with H = W = 1 (section 2)."""
    if x.dim() != 4 or x.shape[2] * x.shape[3] <= 1:
        return False
    return y.dim() < 4 or (y.dim() == 4 and y.shape[2] == 1 and y.shape[3] == 1)


def find_split(graph: Graph, env: dict[str, Tensor]) -> str:
    """Default split tensor (section 2): the input of the last node that collapses a spatial
    map, stepped back over window pools (MaxPool/AveragePool); an MLP uses the input of its
    last dense node (Gemm/MatMul)."""
    for node in reversed(graph.nodes):
        data = graph.data_inputs(node)
        if data and _is_spatial_collapse(env[data[0]], env[node.output[0]]):
            name = data[0]
            while registry.has_trait(graph.producer_op(name) or "", "window_pool"):
                name = graph.data_inputs(graph.nodes[graph.producer[name]])[0]
            return name
    for node in reversed(graph.nodes):
        if registry.has_trait(node.op_type, "dense"):
            return graph.data_inputs(node)[0]
    raise ValueError("no split tensor found: no spatial stage and no Gemm/MatMul")


def initial_map(A: Tensor, g: Tensor) -> Tensor:
    """Section 3: ``R0 = A · mean_{h,w}(g)`` (rank 4; no mean otherwise), ``R0 /= |Σ R0|``."""
    weights = g.mean(dim=(2, 3), keepdim=True) if A.dim() == 4 else g
    R0 = A * weights
    return sdiv(R0, bsum(R0).abs())


# ----------------------------------------------------------------------------- relevance walk


@dataclass
class Walk:
    """What a relevance function may use: the graph, the kept activations and the options."""

    graph: Graph
    env: dict[str, Tensor]
    ratio: float
    add_mode: str
    raw: set[str]
    #: a token model (ae-tokens T3: constants absorb, per-token linear rules; tests/reference/
    #: tokens.py) and the rule of its per-token linear layers
    token: bool = False
    token_linear: str = "conservative"

    def value(self, name: str) -> Tensor:
        """A kept activation (or constant), detached."""
        return self.env[name].detach()

    def data(self, node: Node) -> list[str]:
        """The node's non-constant inputs."""
        return self.graph.data_inputs(node.proto)

    def node(self, proto: onnx.NodeProto) -> Node:
        return self.graph.node(proto, self.env[self.graph.input_name].dtype)

    def input_vjp(self, node: Node, s: Tensor) -> Tensor:
        """``(∂y/∂x)^T s`` for the node's first input x, by autograd through its forward."""
        ins = [self.value(i) if i else None for i in node.inputs]
        return vjp(lambda t: forward_node(node, [t, *ins[1:]]), ins[0], s)  # type: ignore[arg-type,return-value]


def _accumulate(rel: dict[str, Tensor], flows: Flows) -> None:
    """Section 1 step 4: a tensor consumed by several nodes gets the sum of their relevances."""
    for name, r_in in flows:
        rel[name] = rel[name] + r_in if name in rel else r_in


def _node_flows(walk: Walk, proto: onnx.NodeProto, rel: dict[str, Tensor]) -> Flows:
    """The relevance ``proto`` sends to its inputs ([] when none reaches its outputs)."""
    entry = registry.lookup(proto.op_type)
    if entry is not None and entry.multi_output:
        outs = [rel.pop(o, None) for o in proto.output]
        if all(r is None for r in outs):
            return []
        return entry.relevance(walk, walk.node(proto), outs)  # type: ignore[misc]
    if any(o in rel for o in proto.output[1:]):
        raise NotImplementedError(f"relevance on a secondary output of {proto.op_type}")
    R = rel.pop(proto.output[0], None)
    if R is None:
        return []
    if entry is None or entry.relevance is None:
        raise NotImplementedError(f"no relevance rule for {proto.op_type}")
    return entry.relevance(walk, walk.node(proto), R)


def propagate(walk: Walk, split: str, R0: Tensor) -> Tensor:
    """Section 1 step 4: reverse topological walk from the split to the model input, summing
    relevance where a tensor fans out."""
    graph = walk.graph
    rel: dict[str, Tensor] = {split: R0}
    for proto in reversed(graph.nodes[: graph.pos(split) + 1]):
        _accumulate(rel, _node_flows(walk, proto, rel))
    x = walk.env[graph.input_name]
    return rel.get(graph.input_name, torch.zeros_like(x)).reshape(x.shape)


def explain_one(
    graph: Graph, x: Tensor, target: int | None, ratio: float, split: str | None,
    add_mode: str,
) -> dict[str, object]:
    """Explain one sample ``x`` ([1, ...]); see ``reference_explain``."""
    env = run_forward(graph, x.requires_grad_(True))
    split = split or find_split(graph, env)
    logits = env[logits_name(graph)]
    t = int(logits[0].argmax()) if target is None else int(target)
    (g,) = torch.autograd.grad(logits[0, t], env[split], allow_unused=True)
    A = env[split].detach()
    g = torch.zeros_like(A) if g is None else g
    R0 = initial_map(A, g)
    with torch.no_grad():
        walk = Walk(graph, env, ratio, add_mode, raw_tensors(graph))
        R = propagate(walk, split, R0)
    return {"logits": logits.detach(), "target": t, "R0": R0, "R": R, "split": split}


def reference_explain(
    model: onnx.ModelProto,
    x: np.ndarray,
    target: int | None = None,
    ratio: float = 2.0,
    split: str | None = None,
    add_rule: str = "residual",
    dtype: torch.dtype = torch.float64,
) -> dict:
    """Attribution Equilibrium (Nam & Lee, T-PAMI 2024) for every sample of ``x``.

    Runs the ONNX ``model`` with torch ops one sample at a time, picks the split tensor
    (section 2) unless ``split`` is given, forms ``R0`` (section 3) from the gradient of the
    target logit (top-1 when ``target`` is None), and propagates it to the input with the
    section-4 rules. ``add_rule`` is ``'residual'``, ``'share'`` or ``'z'``.

    Returns numpy float32 ``logits`` [N, K], int64 ``target`` [N], ``R0`` [N, ...] at the
    split tensor, ``R`` (the input's shape) and the ``split`` name.
    """
    if add_rule not in ("residual", "share", "z"):
        raise ValueError(f"unknown add_rule {add_rule!r}")
    graph = Graph(model)
    xs = torch.from_numpy(np.asarray(x)).to(dtype)
    outs = [explain_one(graph, xs[i : i + 1].clone(), target, ratio, split, add_rule)
            for i in range(xs.shape[0])]

    def cat(key: str) -> np.ndarray:
        return torch.cat([o[key] for o in outs]).numpy().astype(np.float32)

    return {
        "logits": cat("logits"),
        "target": np.array([o["target"] for o in outs], dtype=np.int64),
        "R0": cat("R0"),
        "R": cat("R"),
        "split": outs[0]["split"],
    }
