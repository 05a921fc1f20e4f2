"""RISE (Petsiuk et al., BMVC 2018) through onnxruntime on the plain classifier.

Uses ``aeq_onnx.audit.rise.rise_saliency`` when that module exists; otherwise a minimal masked-batch
loop with the same signature (random ``cell``×``cell`` binary grids with keep probability
``p``, bilinearly upsampled to ``(cell+1)·⌈H/cell⌉`` and randomly shifted, as in the paper).
Its cost is ``n_masks / batch_size`` forward runs of a ``batch_size`` batch per image.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def implementation() -> str:
    """Which RISE this benchmark runs: the package's own or the local loop."""
    found = importlib.util.find_spec("aeq_onnx.audit.rise")
    return "aeq_onnx.audit.rise" if found else "benchmark loop"


def rise(predict: Predict, images: np.ndarray, targets: np.ndarray, n_masks: int,
         batch_size: int = 64) -> np.ndarray:
    """``(N, H, W)`` saliency with the package's RISE when present, else :func:`rise_loop`."""
    if implementation() == "aeq_onnx.audit.rise":
        from aeq_onnx.audit.rise import rise_saliency

        return np.asarray(rise_saliency(predict, images, targets, n_masks=n_masks,
                                        batch_size=batch_size, seed=0))
    return rise_loop(predict, images, targets, n_masks, batch_size=batch_size)


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` linear interpolation weights (half-pixel centres, clamped edges)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] += 1 - (pos - lo)
    m[np.arange(n_out), hi] += pos - lo
    return m


def make_masks(rng: np.random.Generator, count: int, cell: int, p: float, h: int, w: int,
               ) -> np.ndarray:
    """``(count, H, W)`` float32 RISE masks."""
    ch, cw = math.ceil(h / cell), math.ceil(w / cell)
    grid = (rng.random((count, cell, cell)) < p).astype(np.float32)
    up = np.einsum("ij,bjk,lk->bil", _interp_matrix(cell, (cell + 1) * ch), grid,
                   _interp_matrix(cell, (cell + 1) * cw))
    dy, dx = rng.integers(0, ch, count), rng.integers(0, cw, count)
    return np.stack([up[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(count)])


def rise_loop(predict: Predict, images: np.ndarray, targets: np.ndarray, n_masks: int,
              cell: int = 7, p: float = 0.5, batch_size: int = 64, seed: int = 0,
              ) -> np.ndarray:
    """Saliency ``Σ_i P_t(I ⊙ M_i) · M_i / (n_masks · p)`` per image."""
    rng = np.random.default_rng(seed)
    n, _, h, w = images.shape
    saliency = np.zeros((n, h, w), np.float32)
    for start in range(0, n_masks, batch_size):
        masks = make_masks(rng, min(batch_size, n_masks - start), cell, p, h, w)
        for i in range(n):
            probs = predict((images[i][None] * masks[:, None]).astype(np.float32))
            saliency[i] += np.tensordot(probs[:, int(targets[i])], masks, axes=1)
    return saliency / (n_masks * p)


def softmax_predict(run: Callable[[np.ndarray], np.ndarray]) -> Predict:
    """Wrap a logits function into RISE's probability ``predict``."""
    def predict(batch: np.ndarray) -> np.ndarray:
        logits = run(batch)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return predict
