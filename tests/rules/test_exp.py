"""Exp: no rule (in exported token models it computes constants, Swin-V2's logit scale, or
sits on the attention logits' side, off every relevance path); the reference runs it so that
whole exported blocks go through the reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("Exp")
def exp(ins: Ins, node: Node) -> torch.Tensor:
    """``eˣ``."""
    x = ins[0]
    assert x is not None
    return torch.exp(x)


def test_exp_matches_onnxruntime() -> None:
    check_forward("Exp", [np.array([0.0, 1.0, -2.5], np.float32)])
