"""einsum_matmul: a batched matrix product written as Einsum (q·kᵀ, P·v, MaxViT's 5-D
attention) becomes MatMul (b transposed for the first form); other equations stay; outputs
unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from aeq_onnx.converters import einsum_matmul

HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'
CASES = {
    "q-kT": ("float[N, 3, 4] a, float[N, 5, 4] b", "float[N, 3, 5] y", "ntd,nsd->nts",
             ["Transpose", "MatMul"]),
    "p-v": ("float[N, 3, 5] a, float[N, 5, 4] b", "float[N, 3, 4] y", "nts,nsd->ntd",
            ["MatMul"]),
    "maxvit-5d-spaced": ("float[N, 2, 2, 3, 4] a, float[N, 2, 2, 5, 4] b",
                         "float[N, 2, 2, 3, 5] y", "B G H I D, B G H J D -> B G H I J",
                         ["Transpose", "MatMul"]),
}
KEPT = {
    "projection": ("float[N, 3, 4] a, float[4, 6] b", "float[N, 3, 6] y", "ntd,de->nte"),
    "batch-reordered": ("float[N, 3, 4] a, float[3, N, 4] b", "float[N, 3, 3] y",
                        "ntd,snd->nts"),
    "trace-like": ("float[N, 3, 3] a, float[N, 3, 3] b", "float[N] y", "nii,njj->n"),
}


def _model(build, inputs: str, output: str, equation: str):  # type: ignore[no-untyped-def]
    return build(HEAD + f"g ({inputs}) => ({output}) {{\n  y = Einsum<equation = "
                 f"\"{equation}\">(a, b)\n}}")


@pytest.mark.parametrize("case", list(CASES))
def test_matrix_product_einsum_becomes_matmul(build, same_outputs, ops, case) -> None:
    inputs, output, equation, want = CASES[case]
    model = _model(build, inputs, output, equation)
    rewritten = einsum_matmul.run(model)
    assert ops(rewritten) == want
    same_outputs(model, rewritten)


@pytest.mark.parametrize("case", list(KEPT))
def test_other_einsums_stay(build, ops, case) -> None:
    model = _model(build, *KEPT[case])
    assert ops(einsum_matmul.run(model)) == ["Einsum"]


_ = np
