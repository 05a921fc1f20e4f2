"""Not: no rule (it only computes shapes, masks or indices from shapes in exported token
models, off every gradient and relevance path); the reference runs it so that whole exported
blocks go through the reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("Not")
def logical_not(ins: Ins, node: Node) -> torch.Tensor:
    """Logical not."""
    x = ins[0]
    assert x is not None
    return torch.logical_not(x)


def test_logical_not_matches_onnxruntime() -> None:
    check_forward("Not", [np.array([True, False])])
