"""Independent torch reference of the contrastive AE variants (issue 23).

Every variant changes only *which objective* defines the initial contribution map of AE
(``shared/docs/ae-rules.md`` section 3, where the objective is the target logit ``y_t``), or
combines two AE maps. The initial map is always ``R0 = A · mean_hw(∂J/∂A)``, ``R0 /= |Σ R0|``
with ``∂J/∂A`` taken by torch autograd of the objective ``J`` below (never from a closed-form
seed), and the relevance walk is the one of ``ae_torch`` (section 4 rules), unchanged.

Objectives, with ``y`` the logits (the input of a final Softmax), ``t`` the target and ``K``
the class compared with (default: the runner-up, ``argmax_{n≠t} y_n``)::

    logit    J = y_t                                         (the paper's AE)
    softmax  J = softmax(y)_t                                (SGLRP, Iwana et al. 2019)
    margin   J = y_t - logsumexp_{n≠t} y_n
    versus   J = y_t - y_K                                   (why t and not K)
    dual     J = Σ_{n≠t} y_n                                 (the dual class of CLRP1, Gu et al.
                                                              2018: all other classes' weights)

The ``dual`` *variant* is CLRP with AE as the base explainer: two propagations, ``R_t`` from
``logit`` and ``R_d`` from the dual objective, then::

    R = max(0, R_t - ρ · R_d),   ρ = sdiv(Σ max(R_t, 0), Σ max(R_d, 0))   (per sample)

i.e. the dual map rescaled to the same total positive relevance as the target's, subtracted,
clamped at zero. (Gu et al. give the dual the target's score, so both LRP maps have the same
total; AE maps sum to about 0 at r = 2, so the totals cannot be matched and the positive masses
are. Where the dual map has no positive relevance, ρ = 0 and the result is max(R_t, 0).)

The closed-form seeds on the logits (what the compiled explainer feeds to its vector-Jacobian
products) are in :func:`seed`; tests check them against the autograd of the objectives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import torch

from tests.reference.formulas import bsum, sdiv
from tests.reference.graph import Graph, raw_tensors
from tests.reference.interpreter import Walk, find_split, initial_map, logits_name, run_forward
from tests.reference.interpreter import propagate as _propagate

Tensor = torch.Tensor
SEED_VARIANTS = ("logit", "softmax", "margin", "versus", "dual")
VARIANTS = ("logit", "softmax", "margin", "versus", "dual")
Objective = Callable[[Tensor], Tensor]


def runner_up(logits: Tensor, t: Tensor) -> Tensor:
    """``K = argmax_{n≠t} y_n`` per sample (``logits`` [N, K], ``t`` [N] int64)."""
    masked = logits.detach().clone()
    masked[torch.arange(len(t)), t] = -torch.inf
    return masked.argmax(dim=1)


def objective(variant: str, logits: Tensor, t: Tensor, k: Tensor | None = None) -> Tensor:
    """Per-sample objective ``J`` [N] of ``variant`` (see the module docstring)."""
    rows = torch.arange(len(t))
    y_t = logits[rows, t]
    others = torch.ones_like(logits, dtype=torch.bool)
    others[rows, t] = False
    if variant == "logit":
        return y_t
    if variant == "softmax":
        return torch.softmax(logits, dim=1)[rows, t]
    if variant == "margin":
        return y_t - torch.logsumexp(logits.masked_fill(~others, -torch.inf), dim=1)
    if variant == "versus":
        k = runner_up(logits, t) if k is None else k
        if bool((k == t).any()):
            raise ValueError("versus: K must differ from the target")
        return y_t - logits[rows, k]
    if variant == "dual":
        return (logits * others).sum(dim=1)
    raise ValueError(f"unknown objective {variant!r}")


def seed(variant: str, logits: np.ndarray, t: np.ndarray,
         k: np.ndarray | None = None) -> np.ndarray:
    """Closed-form ``∂J/∂y`` [N, K] in numpy (the explainer's VJP seed on the logits)::

        logit   e_t                 softmax  p_t (e_t - p)        (p = softmax(y))
        margin  e_t - q, q_n = exp(y_n) / Σ_{m≠t} exp(y_m) (n ≠ t), q_t = 0
        versus  e_t - e_K           dual     1 - e_t
    """
    y = np.asarray(logits, np.float64)
    rows, n = np.arange(len(y)), y.shape[1]
    one_t = np.eye(n)[t]
    if variant == "logit":
        return one_t
    if variant == "softmax":
        e = np.exp(y - y.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return p[rows, t][:, None] * (one_t - p)
    if variant == "margin":
        z = np.where(one_t > 0, -np.inf, y)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return one_t - e / e.sum(axis=1, keepdims=True)
    if variant == "versus":
        masked = np.where(one_t > 0, -np.inf, y)
        k = masked.argmax(axis=1) if k is None else np.asarray(k)
        return one_t - np.eye(n)[k]
    if variant == "dual":
        return 1.0 - one_t
    raise ValueError(f"unknown seed {variant!r}")


def split_gradient(env: dict[str, Tensor], split: str, logits: str, obj: Objective) -> Tensor:
    """``∂J/∂A`` [N, ...] at the split by autograd (samples are independent, so the gradient of
    ``Σ_n J_n`` is each sample's own); zeros when ``J`` does not depend on ``A``."""
    A = env[split]
    (g,) = torch.autograd.grad(obj(env[logits]).sum(), A, allow_unused=True, retain_graph=True)
    return torch.zeros_like(A) if g is None else g


def propagate(graph: Graph, env: dict[str, Tensor], split: str, R0: Tensor,
              ratio: float = 2.0, add_mode: str = "residual") -> Tensor:
    """The AE relevance walk of ``ae_torch`` from ``R0`` at ``split`` to the model input."""
    with torch.no_grad():
        walk = Walk(graph, env, ratio, add_mode, raw_tensors(graph))
        return _propagate(walk, split, R0.detach())


def clrp(R_t: Tensor, R_d: Tensor) -> Tensor:
    """``max(0, R_t - ρ R_d)``, ``ρ = sdiv(Σ max(R_t,0), Σ max(R_d,0))`` per sample."""
    rho = sdiv(bsum(R_t.clamp(min=0)), bsum(R_d.clamp(min=0)))
    return (R_t - rho * R_d).clamp(min=0)


def explain_batch(graph: Graph, x: Tensor, variant: str, target: Tensor | None,
                  versus: Tensor | None, ratio: float, split: str | None) -> dict[str, object]:
    """All samples of ``x`` in one walk (every rule is per sample, so this equals explaining
    them one by one); see :func:`reference_contrast`."""
    env = run_forward(graph, x.requires_grad_(True))
    split = split or find_split(graph, env)
    name = logits_name(graph)
    logits = env[name].detach()
    t = logits.argmax(dim=1) if target is None else target
    k = runner_up(logits, t) if variant == "versus" and versus is None else versus
    A = env[split].detach()

    def r0_of(kind: str) -> Tensor:
        return initial_map(A, split_gradient(env, split, name,
                                             lambda y: objective(kind, y, t, k)))

    R0 = r0_of("logit" if variant == "dual" else variant)
    R = propagate(graph, env, split, R0, ratio)
    out: dict[str, object] = {"logits": logits, "target": t, "R0": R0, "R": R, "split": split}
    if variant == "dual":
        R0_d = r0_of("dual")
        R_d = propagate(graph, env, split, R0_d, ratio)
        out.update(R_target=R, R_dual=R_d, R0_dual=R0_d, R=clrp(R, R_d))
    if k is not None:
        out["versus"] = k
    return out


def reference_contrast(model: onnx.ModelProto, x: np.ndarray, variant: str = "logit",
                       target: int | None = None, versus: int | None = None,
                       ratio: float = 2.0, split: str | None = None,
                       dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    """Contrastive AE ``variant`` (``VARIANTS``) for every sample of ``x``, one at a time.

    ``target`` (default: top-1) and ``versus`` (``K`` of ``versus``, default: runner-up) apply to
    every sample. Returns float32 numpy ``logits``, ``R0``, ``R`` (for ``dual`` also
    ``R_target``, ``R_dual``, ``R0_dual``), int64 ``target`` (and ``versus``) and ``split``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")
    graph = Graph(model)
    xs = torch.from_numpy(np.asarray(x)).to(dtype)
    outs = []
    for i in range(xs.shape[0]):
        t = None if target is None else torch.tensor([int(target)])
        k = None if versus is None else torch.tensor([int(versus)])
        outs.append(explain_batch(graph, xs[i:i + 1].clone(), variant, t, k, ratio, split))
    result: dict[str, Any] = {"split": str(outs[0]["split"])}
    for key, value in outs[0].items():
        if isinstance(value, Tensor):
            cat = torch.cat([o[key] for o in outs])  # type: ignore[misc]
            result[key] = cat.numpy().astype(np.int64 if key in ("target", "versus")
                                             else np.float32)
    return result
