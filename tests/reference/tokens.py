"""The token-model reference (ae-tokens.md T2, T3): the formulas of the token rules in torch,
and an explanation that runs them, one sample at a time, from a given split tensor.

Attention probabilities and normalisation statistics are held constant (detached), as in
conservative propagation (Ali et al., ICML 2022). The stabiliser of every signed denominator is
``sdiv_ε(a, b) = a / (b + ε·sign(b))``, 0 where b = 0, with ``ε = 1e-6 · max|b|`` over the
sample. Shares nothing with ``aeq_onnx``; the op references that call these formulas live in
``tests/rules/test_<op>.py`` and switch to them when ``walk.token`` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
import torch

from tests.reference.formulas import sdiv, vjp
from tests.reference.graph import Graph, raw_tensors
from tests.reference.interpreter import Walk, logits_name, propagate, run_forward

Tensor = torch.Tensor
EPS_REL = 1e-6


def sdiv_eps(a: Tensor, b: Tensor) -> Tensor:
    """``a / (b + ε·sign(b))``, 0 where b = 0; ε relative to max|b| of the (single) sample."""
    eps = EPS_REL * b.abs().max()
    return sdiv(a, b + eps * torch.sign(b))


def absorb(x: Tensor, y: Tensor, R: Tensor) -> Tensor:
    """A constant added to x absorbs its share: ``R_x = x · sdiv_ε(R, x + c)``."""
    return (x * sdiv_eps(R, y)).sum_to_size(x.shape)


def conservative(x: Tensor, z: Tensor, R: Tensor, layer: Callable[[Tensor], Tensor]) -> Tensor:
    """LRP-ε with the bias in z: ``R_in = x · VJP_layer(sdiv_ε(R, z))`` (layer: x -> x·W)."""
    return x * vjp(layer, torch.zeros_like(x), sdiv_eps(R, z))


def bounded_dense(x: Tensor, w: Tensor, R: Tensor) -> Tensor:
    """Rule 4.3 on a per-token layer reading the input (a linear patch embedding): with the
    sample's bounds l = min x, h = max x, ``Z = (x-l)·W⁺ + (x-h)·W⁻``, ``S = sdiv(R, Z)``,
    ``R_in = (x-l)·(S W⁺ᵀ) + (x-h)·(S W⁻ᵀ)`` (the bias is not in Z)."""
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    above, below = x - x.min(), x - x.max()
    S = sdiv(R, above @ wp + below @ wn)
    return above * (S @ wp.T) + below * (S @ wn.T)


def equilibrium(x: Tensor, w: Tensor, b: Tensor | None, R: Tensor) -> Tensor:
    """AE's rule 4.2 on ``x·W`` with the bias an always-active input of value 1, weight b,
    whose share is dropped: P + N over x⁺, P over the active, N over the inactive inputs."""
    aw, ab = w.abs(), (b.abs() if b is not None else torch.zeros(w.shape[-1], dtype=x.dtype))

    def share(mass: Tensor, inputs: Tensor, bias: Tensor) -> Tensor:
        den = inputs @ aw + bias
        return inputs * (sdiv(mass, den) @ aw.T)

    rp, rn = R.clamp(min=0), R.clamp(max=0)  # spec 4.1 over the whole (single) sample, even
    P, N = sdiv(rp, rp.sum()), -sdiv(rn, rn.sum())  # where its tokens are rows of a matrix
    a = (x > 0).to(x.dtype)
    zero = torch.zeros_like(ab)
    return share(P + N, x.clamp(min=0), ab) + share(P, a, ab) + share(N, 1.0 - a, zero)


def attention_to_v(p: Tensor, v: Tensor, R: Tensor) -> Tensor:
    """Attention mixing with P fixed: ``R_V = V · (Pᵀ · sdiv_ε(R, P·V))``, summed over the
    axes V was broadcast along."""
    y = torch.matmul(p, v)
    return v * vjp(lambda t: torch.matmul(p, t), torch.zeros_like(v), sdiv_eps(R, y))


def layer_norm_lrp0(x: Tensor, R: Tensor, axes: Sequence[int], eps: float,
                    gamma: Tensor | None, beta: Tensor | None) -> Tensor:
    """LRP-0 through LayerNorm with σ held constant (β absorbs its share):
    ``R_in = x · VJP_f(sdiv_ε(R, f(x)))``, ``f(t) = (t - mean t)/σ(x) · γ + β``."""
    dims = tuple(axes)
    sigma = torch.sqrt(x.var(dim=dims, keepdim=True, unbiased=False) + eps).detach()

    def f(t: Tensor) -> Tensor:
        out = (t - t.mean(dim=dims, keepdim=True)) / sigma
        out = out * gamma if gamma is not None else out
        return out + beta if beta is not None else out

    y = f(x)
    return x * vjp(lambda t: f(t) - f(torch.zeros_like(t)), x, sdiv_eps(R, y))


def explain_tokens(model: onnx.ModelProto, x: np.ndarray, split: str, *,
                   target: int | None = None, initial: str = "elementwise",
                   token_axes: Sequence[int] = (1,), add_rule: str = "z",
                   linear: str = "conservative", dtype: torch.dtype = torch.float64
                   ) -> dict[str, np.ndarray]:
    """ae-tokens T2/T3 for every sample of ``x`` from ``split``: ``R0 = A·∂y/∂A``
    (``elementwise``) or ``A · mean_tokens(∂y/∂A)`` (``channel-mean``, over ``token_axes``),
    ``R0 /= |Σ R0|``, then the token rules back to the input."""
    graph, outs = Graph(model), []
    for i in range(x.shape[0]):
        xs = torch.from_numpy(np.asarray(x[i:i + 1])).to(dtype).requires_grad_(True)
        env = run_forward(graph, xs)
        logits = env[logits_name(graph)]
        t = int(logits[0].argmax()) if target is None else target
        (g,) = torch.autograd.grad(logits[0, t], env[split])
        A = env[split].detach()
        weights = g if initial == "elementwise" else g.mean(dim=tuple(token_axes), keepdim=True)
        R0 = A * weights
        R0 = sdiv(R0, R0.sum().abs())
        with torch.no_grad():
            walk = Walk(graph, env, 2.0, add_rule, raw_tensors(graph), token=True,
                        token_linear=linear)
            R = propagate(walk, split, R0)
        outs.append((logits.detach(), t, R0, R))
    return {"logits": torch.cat([o[0] for o in outs]).numpy(),
            "target": np.array([o[1] for o in outs], np.int64),
            "R0": torch.cat([o[2] for o in outs]).numpy(),
            "R": torch.cat([o[3] for o in outs]).numpy()}
