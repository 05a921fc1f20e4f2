"""Sanity checks for saliency maps (Adebayo et al. 2018, "Sanity Checks for Saliency Maps",
NeurIPS): cascading model-parameter randomisation and the similarity measures used to compare
the explanations of the original and the randomised models.

- :func:`cascading_randomisation` re-initialises the weights of the Conv / ConvTranspose /
  Gemm / MatMul layers one more layer at a time, from the output towards the input
  (cumulative, top-down). Layers are the nodes of those op types with at least one initializer
  input, in reverse topological order of the graph. Each initializer of a layer (weights and
  bias) is re-drawn from ``N(0, std^2)`` with ``std`` the standard deviation of the original
  values; a constant tensor (e.g. a zero bias) uses the std of the layer's largest
  initializer instead. An initializer shared by several layers is re-drawn once, with the first
  (closest to the output) of them.
- :func:`ssim`: structural similarity (Wang et al. 2004, IEEE TIP 13(4)) of two heatmaps, each
  min-max normalised to [0, 1], ``data_range = 1``, ``K1 = 0.01``, ``K2 = 0.03``, as
  ``skimage.metrics.structural_similarity`` by default: a uniform 7x7 window with the sample
  covariance (``N / (N - 1)``), mean over the windows that fit inside the image. ``window=
  "gaussian"`` uses an 11-tap Gaussian (sigma 1.5, population covariance), as the paper.
- :func:`spearman`: Spearman rank correlation (Pearson correlation of average ranks); Adebayo
  et al. also report it on absolute values (``absolute=True``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import onnx
from numpy.lib.stride_tricks import sliding_window_view
from onnx import numpy_helper

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.errors import UnsupportedModelError
from aeq_onnx.ir.traits import LINEAR
from aeq_onnx.rules import registry

#: The weighted layers the cascading randomisation redraws: the ops whose rule is ``linear``.
LAYER_OPS = tuple(registry.ops_with_trait(LINEAR))


def _topological(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes of ``graph`` in a stable topological order (Kahn; graph order among ready nodes)."""
    produced = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    deps = [{produced[x] for x in node.input if x in produced} for node in graph.node]
    done: set[int] = set()
    order: list[onnx.NodeProto] = []
    while len(order) < len(graph.node):
        ready = [i for i in range(len(graph.node)) if i not in done and deps[i] <= done]
        if not ready:
            raise UnsupportedModelError("the graph has a cycle; cannot order its layers")
        done.update(ready)
        order.extend(graph.node[i] for i in ready)
    return order


def randomisable_layers(model: onnx.ModelProto) -> list[tuple[str, list[str]]]:
    """``(layer name, initializer names)`` of the weighted layers, output first."""
    inits = {t.name for t in model.graph.initializer}
    layers = []
    for index, node in enumerate(reversed(_topological(model.graph))):
        names = [x for x in node.input if x in inits]
        if node.op_type in LAYER_OPS and node.domain in ("", "ai.onnx") and names:
            layers.append((node.name or f"{node.op_type}_{index}", names))
    return layers


def _redraw(rng: np.random.Generator, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """New values ``N(0, std^2)`` for each array (constant arrays: the largest one's std)."""
    fallback = float(np.std(max(arrays.values(), key=lambda a: a.size)))
    out = {}
    for name, array in arrays.items():
        std = float(np.std(array)) if array.size > 1 and np.std(array) > 0 else fallback
        out[name] = rng.normal(0.0, std or 1.0, array.shape).astype(array.dtype)
    return out


def cascading_randomisation(model: onnx.ModelProto, seed: int = 0
                            ) -> Iterator[tuple[str, onnx.ModelProto]]:
    """Yield ``(layer name, model copy)`` with the layers up to this one (from the output)
    randomised; each copy adds one layer to the previous one. Seeded: same seed, same models.
    """
    layers = randomisable_layers(model)
    if not layers:
        raise UnsupportedModelError("no Conv/ConvTranspose/Gemm/MatMul layer with weights")
    rng = np.random.default_rng(seed)
    current = onnx.ModelProto()
    current.CopyFrom(model)
    seen: set[str] = set()
    for name, inits in layers:
        todo = [x for x in inits if x not in seen]
        seen.update(todo)
        tensors = {t.name: t for t in current.graph.initializer if t.name in todo}
        if tensors:
            arrays = {k: numpy_helper.to_array(t) for k, t in tensors.items()}
            for key, value in _redraw(rng, arrays).items():
                tensors[key].CopyFrom(numpy_helper.from_array(value, key))
        copy = onnx.ModelProto()
        copy.CopyFrom(current)
        yield name, copy


def _normalise01(x: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1]; a constant map becomes zeros."""
    x = np.asarray(x, np.float64)
    span = float(x.max() - x.min())
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def _filter(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' weighted window mean of a 2-D array with 1-D weights ``taps``."""
    k = len(taps)
    rows = np.tensordot(sliding_window_view(x, k, axis=0), taps, axes=([-1], [0]))
    return np.tensordot(sliding_window_view(rows, k, axis=1), taps, axes=([-1], [0]))


def ssim(a: np.ndarray, b: np.ndarray, window: Literal["uniform", "gaussian"] = "uniform",
         normalise: bool = True) -> float:
    """Mean SSIM ``(2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))``
    with ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L = 1`` (see the module docstring)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise MetricError(f"ssim needs two 2-D maps of one shape, got {a.shape} and {b.shape}")
    if normalise:
        a, b = _normalise01(a), _normalise01(b)
    if window == "uniform":
        taps, cov_norm = np.full(7, 1.0 / 7.0), 49.0 / 48.0
    else:
        x = np.arange(11.0) - 5.0
        taps, cov_norm = np.exp(-x * x / (2 * 1.5 ** 2)), 1.0
        taps /= taps.sum()
    if min(a.shape) < len(taps):
        raise MetricError(f"ssim needs maps of at least {len(taps)}x{len(taps)}, got {a.shape}")
    mu_a, mu_b = _filter(a, taps), _filter(b, taps)
    var_a = cov_norm * (_filter(a * a, taps) - mu_a * mu_a)
    var_b = cov_norm * (_filter(b * b, taps) - mu_b * mu_b)
    cov = cov_norm * (_filter(a * b, taps) - mu_a * mu_b)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1)
                                                      * (var_a + var_b + c2))
    return float(s.mean())


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the flattened ``x``; tied values get the mean of their ranks."""
    _, inverse, counts = np.unique(np.ravel(x), return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    return (starts + (counts + 1) / 2.0)[inverse.ravel()]


def spearman(a: np.ndarray, b: np.ndarray, absolute: bool = False) -> float:
    """Spearman's rho: Pearson correlation of the average ranks of ``a`` and ``b`` (or of
    ``|a|``, ``|b|`` with ``absolute``); ``nan`` when either map is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.size < 2:
        raise MetricError(f"spearman needs two maps of one shape, got {a.shape} and {b.shape}")
    if absolute:
        a, b = np.abs(a), np.abs(b)
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")
