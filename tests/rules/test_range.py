"""Range: no rule (it only computes shapes, masks or indices from shapes in exported token
models, off every gradient and relevance path); the reference runs it so that whole exported
blocks go through the reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("Range")
def range_(ins: Ins, node: Node) -> torch.Tensor:
    """``start, start + delta, ...`` below ``limit``."""
    start, limit, delta = ins[0], ins[1], ins[2]
    assert start is not None and limit is not None and delta is not None
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)


def test_range_matches_onnxruntime() -> None:
    check_forward("Range", [np.array(1, np.int64), np.array(9, np.int64), np.array(3, np.int64)])
    check_forward("Range", [np.array(0.5, np.float32), np.array(2, np.float32),
                            np.array(0.5, np.float32)])
