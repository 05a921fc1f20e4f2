"""ReduceProd: no rule (in exported models it multiplies shape entries, e.g. TF's Tensordot
``N·H·W`` in Keras' per-token Dense layers, off every gradient and relevance path); the
reference runs it so that whole tf2onnx exports go through the reference interpreter. Its
forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("ReduceProd")
def reduce_prod(ins: Ins, node: Node) -> torch.Tensor:
    """The product over ``axes`` (attribute below opset 18, input from 18; all axes when none,
    unless ``noop_with_empty_axes``)."""
    x = ins[0]
    assert x is not None
    axes = node.at.get("axes") if len(ins) < 2 or ins[1] is None else ins[1].tolist()
    keep = bool(node.at.get("keepdims", 1))
    if not axes:
        if node.at.get("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.dim()))
    out = x
    for axis in sorted((int(a) % x.dim() for a in axes), reverse=True):
        out = out.prod(dim=axis, keepdim=keep)
    return out


def test_reduce_prod_matches_onnxruntime() -> None:
    check_forward("ReduceProd", [np.array([2, 16, 16], np.int64)], keepdims=0)
    check_forward("ReduceProd", [np.array([2, 16, 16], np.int64)], axes=[0], keepdims=1)
    check_forward("ReduceProd", [np.arange(1, 7, dtype=np.float32).reshape(2, 3)], axes=[1])
