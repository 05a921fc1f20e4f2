"""Where a token op under test sits in a tiny token model, and the check against the token
reference (``tests/reference/tokens.py``); this module holds no op and no reference.

``token_model(block)``: input ``[N, T, C]`` -> per-token MatMul + bias (the embedding, so the
block is not in the raw input region) -> block -> mean over the tokens (the split: its input)
-> Gemm (the logits). ``compare_tokens`` compiles it, runs a batch and checks logits (1e-5),
R0 and relevance against the reference (1e-4 of max), that every value is finite, and that
each sample alone gives its row of the batch (batch = per sample).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx

import aeq_onnx
from tests.helpers import Net, assert_rel_close, check_logits, explain
from tests.reference.tokens import explain_tokens

TOKENS = 5
CHANNELS = 4
WIDTH = 6
CLASSES = 3
Block = Callable[[Net], str]


def linear(net: Net, out: int, *, bias: bool = True, x: str | None = None) -> str:
    """A per-token layer ``x @ W (+ b)`` on the last axis."""
    x = x or net.cur
    fin = net.shape(x)[-1]
    y = net.op("MatMul", [x, net.weight((fin, out), fan_in=fin)])
    if bias:
        y = net.op("Add", [y, net.const(0.1 * net.rng.standard_normal(out), "b")])
    return y


def token_model(block: Block, *, seed: int = 0, tokens: int = TOKENS,
                channels: int = CHANNELS, width: int = WIDTH) -> tuple[onnx.ModelProto, str]:
    """The model and its split tensor (the block's output)."""
    net = Net((tokens, channels), seed=seed)
    linear(net, width)
    split = block(net)
    net.op("ReduceMean", [split], axes=[1], keepdims=0)
    net.gemm(CLASSES, trans_b=1)
    return net.build(classes=CLASSES), split


def batch_of(net: Net, x: str) -> str:
    """``[N]`` read off ``x`` at run time (Shape -> Gather 0 -> Unsqueeze), as exporters do."""
    shape = net.op("Shape", [x])
    n = net.op("Gather", [shape, net.const(np.asarray(0, np.int64), "i")], axis=0)
    return net.op("Unsqueeze", [n, net.const(np.asarray([0], np.int64), "i")])


def class_token(net: Net) -> str:
    """ViT's front: a constant class token expanded to the batch (its shape built from Shape)
    and concatenated before the tokens, then a position embedding added."""
    x, (tokens, width) = net.cur, net.shape()[-2:]
    target = net.op("Concat", [batch_of(net, x), net.const(np.asarray([1, width], np.int64),
                                                           "i")], axis=0)
    cls = net.op("Expand", [net.const(net.rng.standard_normal((1, 1, width))), target])
    net.op("Concat", [cls, x], axis=1)
    return net.op("Add", [net.cur, net.const(0.1 * net.rng.standard_normal((tokens + 1,
                                                                             width)))])


def cls_head(net: Net, split: str, width: int) -> onnx.ModelProto:
    """The class token's row (Gather 0 along the tokens) -> Gemm: ``split`` is the split."""
    net.op("Gather", [split, net.const(np.asarray(0, np.int64), "i")], axis=1)
    return _gemm(net, width)


def mean_head(net: Net, split: str, width: int) -> onnx.ModelProto:
    """The mean over the tokens (axis 1) -> Gemm (``width`` inputs): ``split`` is the split."""
    net.op("ReduceMean", [split], axes=[1], keepdims=0)
    return _gemm(net, width)


def _gemm(net: Net, width: int) -> onnx.ModelProto:
    w = net.weight((CLASSES, width), fan_in=width)
    net.op("Gemm", [net.cur, w, net.const(0.1 * net.rng.standard_normal(CLASSES))], transB=1)
    return net.build(classes=CLASSES)


def token_input(seed: int, batch: int = 2, tokens: int = TOKENS, channels: int = CHANNELS,
                scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((batch, tokens, channels))).astype(np.float32)


def compare_tokens(model: onnx.ModelProto, x: np.ndarray, split: str, *,
                   initial: str = "elementwise", linear: str = "conservative",
                   add_rule: str = "z", token_axes: Sequence[int] = (1,),
                   tol: float = 1e-4) -> dict[str, np.ndarray]:
    """Explainer vs the token reference; returns the explainer's outputs."""
    explainer = aeq_onnx.compile_explainer(model, initial_map=initial, token_linear=linear,
                                           token_add_rule=add_rule)
    out = explain(explainer, x)
    check_logits(model, x, out["logits"])
    meta = {p.key: p.value for p in explainer.metadata_props}
    assert meta.get("aeq_onnx.split") == split
    ref = explain_tokens(model, x, split, initial=initial, token_axes=token_axes,
                         add_rule=add_rule, linear=linear)
    np.testing.assert_array_equal(out["target_class"], ref["target"])
    assert_rel_close(out["initial_relevance"], ref["R0"], tol, "initial_relevance")
    assert_rel_close(out["relevance"], ref["R"], tol, "relevance")
    for i in range(x.shape[0]):
        alone = explain(explainer, x[i:i + 1])
        assert_rel_close(alone["relevance"][0], out["relevance"][i], 1e-5, "per sample")
    return out


def assert_finite(model: onnx.ModelProto, x: np.ndarray, **params: object) -> None:
    """Every output of the explainer is finite on ``x``."""
    out = explain(aeq_onnx.compile_explainer(model, **params), x)
    for name, value in out.items():
        assert np.isfinite(np.asarray(value, np.float64)).all(), name


def check_forward(op: str, inputs: Sequence[np.ndarray], opset: int = 17,
                  **attrs: object) -> None:
    """The registered reference forward of ``op`` equals onnxruntime's on ``inputs`` (for the
    ops the reference runs but aeq_onnx has no rule for: the shape arithmetic of exporters)."""
    import onnxruntime as ort
    import torch
    from onnx import helper, numpy_helper

    from tests.reference.registry import Node, lookup

    names = [f"in{i}" for i in range(len(inputs))]
    node = helper.make_node(op, names, ["out"], **attrs)
    graph = helper.make_graph([node], "one", [], [helper.make_empty_tensor_value_info("out")],
                              initializer=[numpy_helper.from_array(np.asarray(a), n)
                                           for a, n in zip(inputs, names, strict=True)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    model.graph.output[0].CopyFrom(inferred.graph.output[0])
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {})
    entry = lookup(op)
    assert entry is not None
    from tests.reference.onnx_args import attrs as node_attrs

    ins = [torch.from_numpy(np.asarray(a)) for a in inputs]
    got = entry.forward(ins, Node(node, node_attrs(node), opset, torch.float64))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
