"""The torch reference implementation of AE reproduces the authors' golden relevance.

Golden data: fixtures/golden/{vgg_mini,res_mini}.{onnx,npz} (see fixtures/golden/README.md);
rules: shared/docs/ae-rules.md.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.reference import ae_torch

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
MODELS = ("vgg_mini", "res_mini")
TOLERANCE = 1e-4  # of each array's max |value| (golden README)
KEY = re.compile(r"R_s(?P<b>\d+)_t(?P<t>\d+)_r(?P<r>[\d.]+)")


@cache
def golden(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The golden model and its .npz arrays."""
    with np.load(GOLDEN / f"{name}.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return onnx.load(str(GOLDEN / f"{name}.onnx")), arrays


@cache
def explained(name: str, b: int, t: int, r: str) -> dict:
    """``reference_explain`` for sample ``b``, target ``t``, ratio ``r`` of a golden model."""
    model, data = golden(name)
    return ae_torch.reference_explain(model, data["input"][b : b + 1], target=t, ratio=float(r))


def golden_cases() -> list:
    """One case per (model, array kind, sample, target, ratio) stored in the golden files."""
    cases = []
    for name in MODELS:
        for key in sorted(golden(name)[1]):
            m = KEY.fullmatch(key)
            if m:
                for kind in ("R0", "R"):
                    b, t, r = int(m["b"]), int(m["t"]), m["r"]
                    case_id = f"{name}-{kind}-s{b}-t{t}-r{r}"
                    cases.append(pytest.param(name, kind, b, t, r, id=case_id))
    return cases


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| relative to max |want|."""
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize(("name", "kind", "b", "t", "r"), golden_cases())
def test_reproduces_golden(name: str, kind: str, b: int, t: int, r: str) -> None:
    want = golden(name)[1][f"{kind}_s{b}_t{t}_r{r}"]
    got = explained(name, b, t, r)[kind]
    assert got.shape == want.shape
    assert rel_error(got, want) <= TOLERANCE


@pytest.mark.parametrize("name", MODELS)
def test_split_heuristic_finds_golden_split(name: str) -> None:
    model, data = golden(name)
    graph = ae_torch.Graph(model)
    env = ae_torch.run_forward(graph, torch.from_numpy(data["input"][:1]).double())
    assert ae_torch.find_split(graph, env) == str(data["split"])


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_top1_on_whole_batch(name: str) -> None:
    model, data = golden(name)
    out = ae_torch.reference_explain(model, data["input"])
    np.testing.assert_allclose(out["logits"], data["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["target"], data["logits"].argmax(axis=1))
    assert out["R"].shape == data["input"].shape
    assert out["split"] == str(data["split"])


@pytest.mark.parametrize("b", [0, 1])
def test_equilibrium_vgg_r2(b: int) -> None:
    """Section 6: at r = 2 a plain chain gives Σ R_in ≈ 0 at the input."""
    R = explained("vgg_mini", b, 3, "2.0")["R"].astype(np.float64)
    positive = R.clip(min=0).sum()
    assert positive > 0
    assert abs(R.sum()) <= 1e-5 * positive


def test_rules_are_per_sample() -> None:
    """Section 5: a batch of two gives the same relevance as each sample alone."""
    gen = torch.Generator().manual_seed(0)
    geom = {"stride": (2, 1), "pads": (1, 0, 2, 1), "dilation": (1, 1), "groups": 2}
    x = torch.randn(2, 4, 7, 6, generator=gen, dtype=torch.float64)
    w3 = torch.randn(6, 2, 3, 3, generator=gen, dtype=torch.float64)
    w1 = w3[:, :, :1, :1].contiguous()
    rules = {
        "hidden": (w3, lambda x, w, R: ae_torch.conv_hidden(x, w, R, ratio=1.5, **geom)),
        "pointwise": (w1, lambda x, w, R: ae_torch.conv_pointwise(x, w, R, **geom)),
        "bounded": (w3, lambda x, w, R: ae_torch.conv_bounded(x, w, R, **geom)),
    }
    for w, rule in rules.values():
        out_shape = ae_torch.conv(x, w, ae_torch.ConvGeom(**geom)).shape
        R = torch.randn(out_shape, generator=gen, dtype=torch.float64)
        batch = rule(x, w, R)
        alone = torch.cat([rule(x[i : i + 1], w, R[i : i + 1]) for i in range(2)])
        assert batch.shape == x.shape
        torch.testing.assert_close(batch, alone)
        assert torch.isfinite(batch).all()


def test_sdiv_never_nan() -> None:
    a = torch.tensor([1.0, 0.0, -2.0, 3.0])
    b = torch.tensor([2.0, 0.0, 0.0, -1.0])
    torch.testing.assert_close(ae_torch.sdiv(a, b), torch.tensor([0.5, 0.0, 0.0, -3.0]))
