"""Equal: no rule (it only computes shapes, masks or indices from shapes in exported token
models, off every gradient and relevance path); the reference runs it so that whole exported
blocks go through the reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("Equal")
def equal(ins: Ins, node: Node) -> torch.Tensor:
    """``a == b`` (broadcasting)."""
    a, b = ins[0], ins[1]
    assert a is not None and b is not None
    return torch.eq(a, b)


def test_equal_matches_onnxruntime() -> None:
    check_forward("Equal", [np.array([1, 2, 3], np.int64), np.array([1, 0, 3], np.int64)])
