"""Heatmaps as in the AE paper: relevance summed over channels, a diverging colormap centred on
zero (red: evidence for the class, blue: against, white: none), scaled symmetrically by a high
percentile of |R|; overlays on the photo and a photo | heatmap | overlay panel. Rendering is
deterministic: the same relevance gives the same PNG bytes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from aeq_onnx.render.presets import Layout

# 'bwr'-like diverging table: blue (0, 0, 1) -> white at 0 -> red (1, 0, 0); 255 entries, so
# that 0 falls exactly on the white middle entry (127).
_T = np.linspace(0.0, 1.0, 255)
COLORMAP = np.round(255 * np.stack([
    np.clip(2 * _T, 0, 1),
    1 - np.abs(2 * _T - 1),
    np.clip(2 - 2 * _T, 0, 1),
], axis=1)).astype(np.uint8)


def channel_sum(relevance: np.ndarray, layout: Layout = "NCHW") -> np.ndarray:
    """One sample's relevance ``[C, H, W]`` (NCHW) or ``[H, W, C]`` (NHWC) summed over channels."""
    relevance = np.asarray(relevance, np.float64)
    if relevance.ndim == 2:
        return relevance
    return relevance.sum(axis=0 if layout == "NCHW" else -1)


def normalise(heat: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """``heat / v`` clipped to [-1, 1], ``v`` the ``percentile`` of |heat| (0 stays 0)."""
    heat = np.asarray(heat, np.float64)
    finite = np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0)
    v = float(np.percentile(np.abs(finite), percentile)) if finite.size else 0.0
    if not v > 0:
        v = float(np.abs(finite).max()) if finite.size else 0.0
    if not v > 0:
        return np.zeros_like(finite)
    return np.clip(finite / v, -1.0, 1.0)


def colorize(scaled: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] as uint8 RGB ``[H, W, 3]`` through :data:`COLORMAP`."""
    index = np.round((np.clip(scaled, -1, 1) + 1) * 127).astype(np.intp)
    return COLORMAP[index]


def heatmap_rgb(relevance: np.ndarray, layout: Layout = "NCHW",
                percentile: float = 99.5) -> np.ndarray:
    """The heatmap of one sample's relevance as uint8 RGB ``[H, W, 3]``."""
    return colorize(normalise(channel_sum(relevance, layout), percentile))


def _tile(size: tuple[int, int], min_side: int = 224) -> tuple[int, int]:
    w, h = size
    factor = max(1, -(-min_side // max(1, min(w, h))))
    return w * factor, h * factor


def overlay(photo: Any, relevance: np.ndarray, layout: Layout = "NCHW",
            percentile: float = 99.5, alpha: float = 0.85) -> Any:
    """The heatmap blended over a grey version of ``photo`` (PIL), opaque where |R| is large."""
    from PIL import Image

    scaled = normalise(channel_sum(relevance, layout), percentile)
    color = colorize(scaled).astype(np.float64)
    grey = np.asarray(photo.convert("L").convert("RGB").resize(
        (scaled.shape[1], scaled.shape[0]), Image.Resampling.BILINEAR), np.float64)
    weight = alpha * np.abs(scaled)[:, :, None]
    out = grey * (1 - weight) + color * weight
    return Image.fromarray(np.round(out).astype(np.uint8), "RGB")


def panel(photo: Any, relevance: np.ndarray, title: str, layout: Layout = "NCHW",
          percentile: float = 99.5) -> Any:
    """photo | heatmap | overlay side by side under a title line (class name and score)."""
    from PIL import Image, ImageDraw, ImageFont

    heat = Image.fromarray(heatmap_rgb(relevance, layout, percentile), "RGB")
    over = overlay(photo, relevance, layout, percentile)
    tile = _tile(heat.size)
    tiles = [photo.convert("RGB").resize(tile, Image.Resampling.BILINEAR),
             heat.resize(tile, Image.Resampling.NEAREST),
             over.resize(tile, Image.Resampling.NEAREST)]
    gap, header = 4, 24
    canvas = Image.new("RGB", (3 * tile[0] + 4 * gap, tile[1] + header + gap), "white")
    for i, im in enumerate(tiles):
        canvas.paste(im, (gap + i * (tile[0] + gap), header))
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, 5), title, fill=(0, 0, 0), font=ImageFont.load_default())
    return canvas


def save_png(image: Any, path: str | os.PathLike[str] | Any) -> None:
    """Write ``image`` as PNG (to a path or binary file) with no metadata: same pixels, same
    bytes."""
    target = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    image.save(target, format="PNG", optimize=False, compress_level=6)
