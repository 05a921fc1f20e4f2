"""Heatmaps of every variant for a batch: the top-1 and top-2 classes on the original model and
the top-1 class (kept) on the cascading-randomised models; and the metrics shared by the scene
and photo studies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch

from aeq_onnx.audit.metrics.sanity import cascading_randomisation, randomisable_layers
from benchmarks.contrast.engine import Net, load_net, source_maps
from benchmarks.contrast.metrics import Predictor, curves, rank_corr
from benchmarks.contrast.variants import BY_NAME, VARIANTS, all_sources

Tensor = torch.Tensor
NAMES = tuple(v.name for v in VARIANTS)
LEVELS = (1, 5, 15)  # top layers re-drawn, then all of them


@dataclass
class Nets:
    """The original net and its cascading-randomised copies ``{layers re-drawn: net}``."""

    original: Net
    randomised: dict[int, Net]
    layers: int


def randomised_nets(model: onnx.ModelProto, seed: int = 0,
                    dtype: torch.dtype = torch.float32) -> Nets:
    """The model and its copies with the top 1, 5, 15 and all weighted layers re-drawn (each
    initializer from N(0, std²) of its own values; ``aeq_onnx.audit.metrics.sanity``)."""
    total = len(randomisable_layers(model))
    wanted = sorted({n for n in (*LEVELS, total) if n <= total})
    nets = {}
    for i, (_, copy) in enumerate(cascading_randomisation(model, seed), start=1):
        if i in wanted:
            nets[i] = load_net(copy, dtype)
    return Nets(load_net(model, dtype), nets, total)


def variant_heats(net: Net, x: Tensor, t: Tensor, k: Tensor, names: Sequence[str],
                  chunk: int) -> tuple[Tensor, dict[str, np.ndarray]]:
    """Logits and the heatmap [B, H, W] of every named variant."""
    logits, rel = source_maps(net, x, t, k, all_sources(list(names)), chunk)
    heats = {}
    for name in names:
        v = BY_NAME[name]
        r = v.combine(*(rel[s] for s in v.sources))
        heats[name] = r.sum(dim=1).numpy().astype(np.float64)
    return logits, heats


def study_batch(nets: Nets, x: Tensor, t1: Tensor, t2: Tensor, names: Sequence[str],
                chunk: int) -> dict[str, Any]:
    """Heatmaps: ``top1`` (t = t1, K = t2), ``top2`` (t = t2, K = t1) on the original model and
    ``rand`` {level: heats} for t1 (K = t2) on the randomised ones."""
    both = torch.cat([x, x])
    _, heats = variant_heats(nets.original, both, torch.cat([t1, t2]), torch.cat([t2, t1]),
                             names, chunk)
    b = len(x)
    top1 = {n: h[:b] for n, h in heats.items()}
    top2 = {n: h[b:] for n, h in heats.items()}
    rand = {lvl: variant_heats(net, x, t1, t2, names, chunk)[1]
            for lvl, net in nets.randomised.items()}
    return {"top1": top1, "top2": top2, "rand": rand}


def sample_metrics(batch: dict[str, Any], i: int, image: np.ndarray, target: int,
                   predict: Predictor, steps: int) -> dict[str, dict[str, float]]:
    """Per variant: insertion, deletion, top-2 Spearman, randomisation Spearman per level."""
    top1, top2 = batch["top1"], batch["top2"]
    rand: dict[int, dict[str, np.ndarray]] = batch["rand"]
    out: dict[str, dict[str, float]] = {}
    for name, heats in top1.items():
        h = heats[i]
        row = curves(predict, image, h, target, steps)
        row["top2"] = rank_corr(h, top2[name][i])["signed"]
        for lvl, rh in rand.items():
            for kind, value in rank_corr(h, rh[name][i]).items():
                row[f"rand{lvl}_{kind}"] = value
        row["empty"] = float(not (h > 0).any())
        out[name] = row
    return out
