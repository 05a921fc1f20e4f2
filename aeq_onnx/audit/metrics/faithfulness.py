"""Causal faithfulness metrics of Petsiuk et al. 2018 (RISE, BMVC, section 4.1):
insertion and deletion.

Pixels are ranked by relevance, most relevant first (a stable sort: ties go to the earlier
pixel in row-major order). Deletion starts from the image and replaces the ranked pixels by a
baseline, insertion starts from the baseline and puts the image's pixels back. After step
``i`` of ``steps`` the first ``n_i = floor(i * H * W / steps)`` pixels are changed; the curve
is the target-class probability at ``i = 0 .. steps`` (``steps + 1`` points) and the AUC is the
trapezoid rule over ``x_i = n_i / (H * W)`` in [0, 1]. The default baseline of insertion is a
blurred copy of the image (RISE code: 11x11 Gaussian kernel, sigma 5, zero padding), deletion
uses zeros in the RISE code; both are configurable. Images are ``(C, H, W)`` (NCHW).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics._common import as_heat

Predictor = Callable[[np.ndarray], np.ndarray]


def gaussian_kernel(size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """1-D Gaussian ``exp(-x^2 / (2 sigma^2))`` for ``x = -(size // 2) .. size // 2``, sum 1."""
    if size < 1 or size % 2 == 0 or sigma <= 0:
        raise MetricError(f"need an odd kernel size >= 1 and sigma > 0, got {size}, {sigma}")
    x = np.arange(size, dtype=np.float64) - size // 2
    kernel = np.exp(-x * x / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def gaussian_blur(image: np.ndarray, size: int = 11, sigma: float = 5.0,
                  padding: Literal["constant", "reflect", "edge"] = "constant") -> np.ndarray:
    """Separable Gaussian blur of ``(..., H, W)`` over the last two axes (same shape).

    ``padding="constant"`` pads with zeros, as RISE's ``conv2d(x, kernel, padding=size // 2)``.
    """
    kernel, r = gaussian_kernel(size, sigma), size // 2
    out = np.asarray(image, dtype=np.float64)
    for axis in (-2, -1):
        widths = [(0, 0)] * out.ndim
        widths[axis] = (r, r)
        padded = np.pad(out, widths, mode=padding)
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(k, k + n), axis=axis)
                  for k, w in enumerate(kernel))
    return np.asarray(out)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable ``exp(z - max z) / sum exp(z - max z)`` along ``axis``."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


def softmax_predictor(model: ort.InferenceSession | Callable[[np.ndarray], Any],
                      output: int = 0) -> Predictor:
    """A predictor ``(B, C, H, W) float32 -> (B, K)`` probabilities from logits.

    ``model`` is an onnxruntime session (its first input is fed, output ``output`` read) or a
    callable returning logits ``(B, K)``; softmax is applied over the last axis.
    """
    run: Callable[[np.ndarray], Any] = model
    if isinstance(model, ort.InferenceSession):
        name = model.get_inputs()[0].name
        session = model

        def run(batch: np.ndarray) -> Any:
            return session.run(None, {name: np.ascontiguousarray(batch, np.float32)})[output]

    def predict(batch: np.ndarray) -> np.ndarray:
        logits = np.asarray(run(np.asarray(batch, np.float32)))
        return softmax(logits.reshape(logits.shape[0], -1))
    return predict


def trapezoid_auc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under ``y(x)`` by the trapezoid rule ``sum (y_i + y_{i+1}) / 2 * (x_{i+1} - x_i)``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def _baseline(image: np.ndarray, baseline: str | np.ndarray, sigma: float) -> np.ndarray:
    """The start (insertion) or replacement (deletion) image."""
    if isinstance(baseline, np.ndarray):
        if baseline.shape != image.shape:
            raise MetricError(f"baseline shape {baseline.shape} != image shape {image.shape}")
        return baseline.astype(np.float64)
    if baseline == "blur":
        return gaussian_blur(image, 11, sigma)
    if baseline == "zero":
        return np.zeros_like(image)
    raise MetricError(f"baseline must be 'blur', 'zero' or an array, got {baseline!r}")


def _check(image: np.ndarray, heat: np.ndarray, steps: int, batch_size: int) -> None:
    """Shapes and counts of :func:`insertion_deletion`."""
    if image.ndim != 3 or image.shape[1:] != heat.shape:
        raise MetricError(f"image {image.shape} must be (C, H, W) with (H, W) = {heat.shape}")
    if steps < 1 or batch_size < 1:
        raise MetricError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")


def relevance_rank(heat: np.ndarray) -> np.ndarray:
    """``(H, W)`` rank of each pixel, 0 = most relevant; ties: earlier row-major pixel first."""
    order = np.argsort(-heat.ravel(), kind="stable")
    rank = np.empty(heat.size, dtype=np.int64)
    rank[order] = np.arange(heat.size)
    return rank.reshape(heat.shape)


def insertion_deletion(predict: Predictor, image: np.ndarray, heat: np.ndarray, target: int,
                       steps: int = 100, baseline: str | np.ndarray = "blur",
                       mode: Literal["insertion", "deletion"] = "insertion",
                       batch_size: int = 32, sigma: float = 5.0) -> tuple[np.ndarray, float]:
    """Insertion or deletion curve (``steps + 1`` target probabilities) and its AUC.

    ``predict`` maps a float32 batch ``(B, C, H, W)`` to probabilities ``(B, K)`` (see
    :func:`softmax_predictor`); ``baseline`` is ``"blur"`` (sigma ``sigma``), ``"zero"`` or an
    array like ``image``. See the module docstring for the ordering and the x axis.
    """
    image, heat = np.asarray(image, np.float64), as_heat(heat)
    _check(image, heat, steps, batch_size)
    if mode not in ("insertion", "deletion"):
        raise MetricError(f"mode must be 'insertion' or 'deletion', got {mode!r}")
    base = _baseline(image, baseline, sigma)
    start, end = (base, image) if mode == "insertion" else (image, base)
    rank = relevance_rank(heat)
    counts = np.arange(steps + 1, dtype=np.int64) * heat.size // steps
    curve = np.empty(steps + 1, dtype=np.float64)
    for lo in range(0, steps + 1, batch_size):
        n = counts[lo:lo + batch_size]
        changed = (rank[None] < n[:, None, None])[:, None]
        batch = np.where(changed, end[None], start[None]).astype(np.float32)
        probs = np.asarray(predict(batch))
        if probs.ndim != 2 or probs.shape[0] != len(n) or not 0 <= target < probs.shape[1]:
            raise MetricError(f"predict returned {probs.shape}; need ({len(n)}, K > {target})")
        curve[lo:lo + len(n)] = probs[:, target]
    return curve, trapezoid_auc(counts / heat.size, curve)
