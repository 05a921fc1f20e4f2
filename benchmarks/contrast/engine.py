"""Batched torch computation of the sources of ``variants`` with the independent reference.

Every AE rule is per sample, so many (image, initial map) rows go through one relevance walk:
the images are repeated once per source and the walk runs on the stacked initial maps. This is
the reference's own walk (``tests/reference/ae_torch.py``), only batched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
import torch
import torch.nn.functional as F

from benchmarks.contrast.variants import (
    OBJECTIVES,
    SPLIT_SOURCES,
    _cam,
    extra_objective,
)
from tests.reference.ae_torch import Graph, find_split, initial_map, logits_name, run_forward
from tests.reference.contrast_torch import propagate, sdiv, split_gradient

Tensor = torch.Tensor


@dataclass
class Net:
    """A parsed ONNX classifier for the reference walk."""

    graph: Graph
    dtype: torch.dtype = torch.float32
    split: str = ""
    logits: str = field(init=False)

    def __post_init__(self) -> None:
        self.logits = logits_name(self.graph)


def load_net(model: onnx.ModelProto, dtype: torch.dtype = torch.float32) -> Net:
    """``Net`` of ``model`` (the split tensor is found on the first batch)."""
    return Net(Graph(model), dtype)


def _objective_sources(sources: list[str]) -> list[str]:
    """The objectives whose R0 the sources need (``cam:X`` needs what ``X`` needs, a split
    source its inputs)."""
    out: list[str] = []
    for s in sources:
        s = s.removeprefix("cam:")
        deps = SPLIT_SOURCES[s][0] if s in SPLIT_SOURCES else (s,)
        out += [d for d in deps if d not in out]
    return out


def cam_map(r0: Tensor, size: tuple[int, ...]) -> Tensor:
    """``Up(ReLU(cam(R0))) / max`` [B, 1, H, W]: the Grad-CAM of an initial map, bilinear to the
    input size, at unit max (zeros when nothing is positive)."""
    cam = _cam(r0).clamp(min=0)
    up = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    return sdiv(up, up.amax(dim=(2, 3), keepdim=True))


def initial_maps(net: Net, x: Tensor, t: Tensor, k: Tensor,
                 sources: list[str]) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """Logits [B, K], the initial map of every propagated source, and the ``cam:J`` sources."""
    env = run_forward(net.graph, x.detach().to(net.dtype).clone().requires_grad_(True))
    net.split = net.split or find_split(net.graph, env)
    A = env[net.split].detach()
    r0: dict[str, Tensor] = {}
    for obj in _objective_sources(sources):
        base, cls = ("logit", k) if obj == "logit@K" else (obj, t)
        if base not in OBJECTIVES:
            raise ValueError(f"unknown source {obj!r}")

        def fn(y: Tensor, base: str = base, cls: Tensor = cls) -> Tensor:
            return extra_objective(base, y, cls, k)

        r0[obj] = initial_map(A, split_gradient(env, net.split, net.logits, fn))
    for s in {s.removeprefix("cam:") for s in sources} & set(SPLIT_SOURCES):
        deps, build = SPLIT_SOURCES[s]
        r0[s] = build(*(r0[d] for d in deps))
    out = {s: r0[s] for s in sources if not s.startswith("cam:")}
    cams = {s: cam_map(r0[s.removeprefix("cam:")], tuple(x.shape[2:]))
            for s in sources if s.startswith("cam:")}
    return env[net.logits].detach(), out, cams


def propagate_rows(net: Net, x: Tensor, r0: dict[str, Tensor],
                   chunk: int = 64) -> dict[str, Tensor]:
    """``AE(R0)`` for every source's initial map, ``chunk`` (image, source) rows per walk."""
    names = list(r0)
    rows_r0 = torch.cat([r0[n] for n in names])
    rows_x = x.to(net.dtype).repeat(len(names), *([1] * (x.dim() - 1)))
    parts = []
    for lo in range(0, len(rows_r0), chunk):
        with torch.no_grad():
            env = run_forward(net.graph, rows_x[lo:lo + chunk])
        parts.append(propagate(net.graph, env, net.split, rows_r0[lo:lo + chunk]))
    rel = torch.cat(parts)
    b = x.shape[0]
    return {n: rel[i * b:(i + 1) * b] for i, n in enumerate(names)}


def source_maps(net: Net, x: Tensor, t: Tensor, k: Tensor, sources: list[str],
                chunk: int = 64) -> tuple[Tensor, dict[str, Tensor]]:
    """Logits and every source: the propagated relevance ``R`` [B, C, H, W], or a ``cam:J``
    map [B, 1, H, W]."""
    logits, r0, cams = initial_maps(net, x, t, k, sources)
    rel = propagate_rows(net, x, r0, chunk) if r0 else {}
    return logits, {**rel, **cams}
