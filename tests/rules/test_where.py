"""Where: no rule (it only computes shapes, masks or indices from shapes in exported token
models, off every gradient and relevance path); the reference runs it so that whole exported
blocks go through the reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("Where")
def where(ins: Ins, node: Node) -> torch.Tensor:
    """``x`` where ``cond``, else ``y`` (broadcasting)."""
    cond, x, y = ins[0], ins[1], ins[2]
    assert cond is not None and x is not None and y is not None
    return torch.where(cond, x, y)


def test_where_matches_onnxruntime() -> None:
    check_forward("Where", [np.array([True, False, True]), np.array([1.0, 2.0, 3.0], np.float32),
                            np.array([-1.0], np.float32)])
