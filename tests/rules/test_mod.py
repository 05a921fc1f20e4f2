"""Mod: no rule (it only computes shapes, masks or indices from shapes in exported token
models, off every gradient and relevance path); the reference runs it so that whole exported
blocks go through the reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("Mod")
def mod(ins: Ins, node: Node) -> torch.Tensor:
    """``a mod b`` (integers: the sign of the divisor, like Python; ``fmod=1``: C's)."""
    a, b = ins[0], ins[1]
    assert a is not None and b is not None
    if int(node.at.get("fmod", 0)):
        return torch.fmod(a, b)
    return torch.remainder(a, b)


def test_mod_matches_onnxruntime() -> None:
    check_forward("Mod", [np.array([7, -7, 5], np.int64), np.array([3, 3, -2], np.int64)])
