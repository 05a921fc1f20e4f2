"""Sqrt: no rule (it only computes shapes, masks or indices from shapes in exported token
models, off every gradient and relevance path); the reference runs it so that whole exported
blocks go through the reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("Sqrt")
def sqrt(ins: Ins, node: Node) -> torch.Tensor:
    """``√x``."""
    x = ins[0]
    assert x is not None
    return torch.sqrt(x)


def test_sqrt_matches_onnxruntime() -> None:
    check_forward("Sqrt", [np.array([4.0, 2.0, 0.25], np.float32)])
