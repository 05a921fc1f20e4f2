"""Einsum: no rule (the converters turn batched matrix products written as Einsum into MatMul;
any other Einsum is refused); the reference runs it, with attention mixing's relevance, so
that models written with it go through the reference interpreter. Its forward vs
onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.formulas import vjp
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference
from tests.reference.tokens import sdiv_eps
from tests.rules.test_matmul import from_softmax
from tests.rules.token_scaffold import check_forward


def einsum_relevance(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Attention mixing written as Einsum (first operand softmax probabilities): V by the
    z-rule with P fixed, through the Einsum itself (ae-tokens T3); nothing else."""
    p, v = node.inputs
    if p in walk.graph.const or v in walk.graph.const or not from_softmax(walk, p):
        raise NotImplementedError("Einsum relevance other than attention mixing")
    equation = str(node.at["equation"]).replace(" ", "")
    pv, vv = walk.value(p), walk.value(v)
    y = torch.einsum(equation, pv, vv)
    return [(v, vv * vjp(lambda t: torch.einsum(equation, pv, t), torch.zeros_like(vv),
                         sdiv_eps(R, y)))]


@reference("Einsum", relevance=einsum_relevance)
def einsum(ins: Ins, node: Node) -> torch.Tensor:
    """``torch.einsum(equation, *inputs)``."""
    return torch.einsum(str(node.at["equation"]).replace(" ", ""), *ins)


def test_einsum_matches_onnxruntime() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 5, 4)).astype(np.float32)
    check_forward("Einsum", [a, b], equation="ntd,nsd->nts")
    check_forward("Einsum", [a, rng.standard_normal((4, 6)).astype(np.float32)],
                  equation="ntd,de->nte")
