"""ReduceL2: no rule (Swin-V2 normalises q and k with it, on the attention logits' side, which
gets no relevance); the reference runs it so that whole exported blocks go through the
reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.onnx_args import ints_arg
from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("ReduceL2")
def reduce_l2(ins: Ins, node: Node) -> torch.Tensor:
    """``√Σ x²`` over ``axes`` (attribute before opset 18, input from 18; all when empty)."""
    x = ins[0]
    assert x is not None
    axes = ints_arg(ins, 1, node.at, "axes") or list(range(x.dim()))
    return torch.sqrt((x * x).sum(dim=tuple(axes), keepdim=bool(node.at.get("keepdims", 1))))


def test_reduce_l2_matches_onnxruntime() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.0
    check_forward("ReduceL2", [x], axes=[-1])
    check_forward("ReduceL2", [x], axes=[0], keepdims=0)
