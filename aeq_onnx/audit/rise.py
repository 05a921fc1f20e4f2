"""RISE: Randomized Input Sampling for Explanation of black-box models (Petsiuk, Das and
Saenko 2018, BMVC).

Mask ``i`` (of ``n_masks``): a binary grid of ``cell x cell`` cells, each kept with probability
``p``, upsampled bilinearly to ``(cell + 1) * ceil(H / cell)`` by ``(cell + 1) * ceil(W / cell)``
(half-pixel centres, edges clamped, as ``skimage.transform.resize(order=1)`` in the authors'
code) and cropped to ``H x W`` at a random shift in ``[0, ceil(H / cell))`` x
``[0, ceil(W / cell))``. The saliency of class ``t`` is the Monte-Carlo estimate

    S_t = sum_i P_t(x * M_i) M_i / (N p).

Mask ``i`` is drawn from ``np.random.default_rng([seed, i])``, so it depends only on the seed,
its index, the image size, ``cell`` and ``p`` (not on ``batch_size``), and all images see the
same masks. Masks are generated ``batch_size`` at a time, never all at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics.faithfulness import Predictor, softmax_predictor

Progress = Callable[[int, int], None]


def _axis_matrix(shift: np.ndarray, out: int, cell: int, up: int) -> np.ndarray:
    """Bilinear interpolation matrices ``(B, out, cell)`` for output pixels ``shift + 0..out-1``
    of a ``cell -> up`` resize: source coordinate ``(o + 0.5) * cell / up - 0.5``, clamped."""
    coord = (shift[:, None] + np.arange(out)[None, :] + 0.5) * (cell / up) - 0.5
    coord = np.clip(coord, 0.0, cell - 1.0)
    i0 = np.floor(coord).astype(np.int64)
    i1 = np.minimum(i0 + 1, cell - 1)
    matrix = np.zeros((len(shift), out, cell), dtype=np.float64)
    b, o = np.arange(len(shift))[:, None], np.arange(out)[None, :]
    np.add.at(matrix, (b, o, i0), 1.0 - (coord - i0))
    np.add.at(matrix, (b, o, i1), coord - i0)
    return matrix.astype(np.float32)


def upsample_crop(grids: np.ndarray, shifts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of ``grids (B, cell, cell)`` to ``(cell + 1) * ceil(size / cell)``
    cropped to ``size`` at ``shifts (B, 2)`` (row, column): ``(B, H, W)`` float32 masks,
    computed separably as ``R_b @ grid_b @ C_b^T``."""
    cell = grids.shape[1]
    rows = _axis_matrix(shifts[:, 0], size[0], cell, (cell + 1) * math.ceil(size[0] / cell))
    cols = _axis_matrix(shifts[:, 1], size[1], cell, (cell + 1) * math.ceil(size[1] / cell))
    return np.asarray(rows @ grids.astype(np.float32) @ cols.transpose(0, 2, 1))


def rise_masks(start: int, count: int, size: tuple[int, int], cell: int = 7, p: float = 0.5,
               seed: int = 0) -> np.ndarray:
    """Masks ``start .. start + count - 1`` of the RISE mask set, ``(count, H, W)`` float32."""
    if cell < 1 or not 0 < p <= 1:
        raise MetricError(f"need cell >= 1 and 0 < p <= 1, got cell={cell}, p={p}")
    steps = (math.ceil(size[0] / cell), math.ceil(size[1] / cell))
    grids = np.empty((count, cell, cell), dtype=bool)
    shifts = np.empty((count, 2), dtype=np.int64)
    for k in range(count):
        rng = np.random.default_rng([seed, start + k])
        grids[k] = rng.random((cell, cell)) < p
        shifts[k] = rng.integers(0, steps[0]), rng.integers(0, steps[1])
    return upsample_crop(grids, shifts, size)


def _check(images: np.ndarray, targets: np.ndarray, n_masks: int, batch_size: int) -> None:
    """Shapes and counts of :func:`rise_saliency`."""
    if images.ndim != 4 or targets.shape != (images.shape[0],):
        raise MetricError(f"need images (N, C, H, W) and targets (N,), got {images.shape}, "
                          f"{targets.shape}")
    if n_masks < 1 or batch_size < 1:
        raise MetricError(f"n_masks and batch_size must be >= 1, got {n_masks}, {batch_size}")


def rise_saliency(predict: Predictor, images: np.ndarray, targets: np.ndarray,
                  n_masks: int = 4000, cell: int = 7, p: float = 0.5, batch_size: int = 64,
                  seed: int = 0, progress: Progress | None = None) -> np.ndarray:
    """RISE saliency ``(N, H, W)`` of ``targets`` for ``images (N, C, H, W)`` (NCHW).

    ``predict`` maps a float32 batch ``(B, C, H, W)`` to class probabilities ``(B, K)``;
    ``progress(done, n_masks)`` is called after each chunk of masks.
    """
    images = np.asarray(images, np.float32)
    targets = np.asarray(targets, np.int64)
    _check(images, targets, n_masks, batch_size)
    size = (images.shape[2], images.shape[3])
    total = np.zeros((images.shape[0], *size), dtype=np.float64)
    for start in range(0, n_masks, batch_size):
        masks = rise_masks(start, min(batch_size, n_masks - start), size, cell, p, seed)
        for n, (image, target) in enumerate(zip(images, targets, strict=True)):
            probs = np.asarray(predict(image[None] * masks[:, None]))
            if probs.ndim != 2 or probs.shape[0] != len(masks) or not 0 <= target < probs.shape[1]:
                raise MetricError(f"predict returned {probs.shape}; need ({len(masks)}, K > "
                                  f"{target})")
            total[n] += np.tensordot(probs[:, target].astype(np.float64), masks, axes=1)
        if progress is not None:
            progress(start + len(masks), n_masks)
    return (total / (n_masks * p)).astype(np.float32)


def rise_for_session(session: ort.InferenceSession, images: np.ndarray, targets: np.ndarray,
                     n_masks: int = 4000, cell: int = 7, p: float = 0.5, batch_size: int = 64,
                     seed: int = 0, progress: Progress | None = None) -> np.ndarray:
    """:func:`rise_saliency` of a classifier session whose first output is logits (softmax
    applied here)."""
    return rise_saliency(softmax_predictor(session), images, targets, n_masks, cell, p,
                         batch_size, seed, progress)
