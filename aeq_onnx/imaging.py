"""Heatmaps as in the AE paper: relevance summed over channels, a diverging colormap centred on
zero (red: evidence for the class, blue: against, white: none), scaled symmetrically by a high
percentile of |R|; overlays on the photo and a photo | heatmap | overlay panel. Rendering is
deterministic: the same relevance gives the same PNG bytes.
"""

from __future__ import annotations

import difflib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from aeq_onnx.errors import InputError
from aeq_onnx.gallery import write_gallery
from aeq_onnx.presets import (
    Layout,
    Preset,
    get_preset,
    input_spec,
    preprocess,
    preset_from_metadata,
)

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


# --------------------------------------------------------------------------- photos -> maps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")


@dataclass
class ImageResult:
    """One photo explained for one class."""

    source: str
    rank: int  # 0: the class asked for or the top-1; k: the (k+1)-th class of --top-k
    class_index: int
    class_name: str
    score: float  # softmax probability of the class
    logit: float
    provider: str
    seconds: float  # explainer time per image (its share of the batch)
    png: Path | None = None
    npy: Path | None = None


@dataclass
class ImageReport:
    """What :func:`explain_images` did: results, failures ``(path, message)`` and files."""

    results: list[ImageResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    preset: Preset | None = None
    layout: Layout = "NCHW"
    out_dir: Path | None = None
    gallery: Path | None = None

    @property
    def ok(self) -> bool:
        """True when every path was read and explained."""
        return not self.failures


def collect_images(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path],
                                                                     list[tuple[str, str]]]:
    """Image files named in ``paths`` (folders: their image files, recursively, sorted) and the
    paths that cannot be used ``(path, message)``."""
    files: list[Path] = []
    failures: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                failures.append((str(path), "folder holds no image files"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            failures.append((str(path), "no such file or folder"))
    return files, failures


def load_image(path: str | os.PathLike[str]) -> Any:
    """The decoded photo (PIL image); :class:`InputError` when it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)  # a copy, upright as the camera held it
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read '{path}' as an image: {exc}") from None


def load_labels(labels: str | os.PathLike[str] | Sequence[str] | None,
                classes: int) -> list[str]:
    """Class names: from a file (one per line) or a list; ImageNet's for 1000 classes; else
    ``class K``."""
    if labels is None:
        if classes == 1000:
            text = resources.files("aeq_onnx").joinpath("data/imagenet_classes.txt").read_text(
                encoding="utf-8")
            return [line.strip() for line in text.splitlines() if line.strip()]
        return [f"class {k}" for k in range(classes)]
    if isinstance(labels, (str, os.PathLike)):
        try:
            text = Path(labels).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read labels file '{labels}': {exc}") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        names = [str(n) for n in labels]
    if len(names) != classes:
        raise InputError(f"{len(names)} labels given, the model has {classes} classes")
    return names


def class_by_name(name: str, labels: Sequence[str]) -> int:
    """The index of class ``name`` (case-insensitive); :class:`InputError` naming close ones."""
    wanted = name.strip().lower()
    for k, label in enumerate(labels):
        if label.lower() == wanted:
            return k
    close = difflib.get_close_matches(name, list(labels), n=5)
    hint = f"; close: {', '.join(close)}" if close else ""
    raise InputError(f"no class named '{name}'{hint}")


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return slug[:40] or "class"


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def explain_images(
    model: Any,
    paths: Sequence[str | os.PathLike[str]],
    *,
    target: int | None = None,
    target_name: str | None = None,
    top_k: int | None = None,
    labels: str | os.PathLike[str] | Sequence[str] | None = None,
    preset: str | Preset | None = None,
    size: int | None = None,
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    batch_size: int = 8,
    out: str | os.PathLike[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    percentile: float = 99.5,
    progress: Callable[[int, int], None] | None = None,
    **compile_kwargs: Any,
) -> ImageReport:
    """Explain photos (files or folders) with an AE explainer.

    ``model``: a classifier or explainer (path, bytes, ModelProto) or an :class:`Explainer`.
    Classes: ``target`` (index), ``target_name`` (label) or ``top_k`` (each of the k best);
    default the top-1. The preset is ``preset``, else the one stored in the explainer's metadata,
    else ``imagenet``; ``size``/``mean``/``std`` override it. With ``out``, writes per image and
    class a panel PNG (photo | heatmap | overlay) and the raw relevance ``.npy`` (model layout),
    plus ``index.html``. Unreadable paths and corrupt images are recorded in
    ``report.failures`` and skipped; the others are explained.
    """
    from aeq_onnx.runtime import Explainer

    if sum(v is not None for v in (target, target_name, top_k)) > 1:
        raise InputError("give at most one of target, target_name and top_k")
    if top_k is not None and top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    explainer = model if isinstance(model, Explainer) else Explainer(
        model, device=device, threads=threads, **compile_kwargs)  # type: ignore[arg-type]
    if top_k is not None and top_k > explainer.classes:
        raise InputError(f"top_k {top_k} exceeds the model's {explainer.classes} classes")
    names = load_labels(labels, explainer.classes)
    if target_name is not None:
        target = class_by_name(target_name, names)
    if target is not None:
        explainer.check_target(target, 1)
    chosen = preset if preset is not None else preset_from_metadata(explainer.metadata)
    resolved = get_preset(chosen, size=size, mean=mean,  # type: ignore[arg-type]
                          std=std)  # type: ignore[arg-type]
    spec = input_spec(list(explainer._input.shape), resolved)
    report = ImageReport(preset=resolved, layout=spec.layout)
    files, report.failures = collect_images(paths)
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        report.out_dir = out_dir
    used: dict[str, str] = {}
    ranks = top_k or 1
    done = 0
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        samples, photos, sources = [], [], []
        for path in chunk:
            try:
                x, photo = preprocess(load_image(path), resolved, spec)
            except InputError as exc:
                report.failures.append((str(path), str(exc)))
                continue
            samples.append(x)
            photos.append(photo)
            sources.append(path)
        if samples:
            batch = np.stack(samples)
            order: np.ndarray | None = None
            for rank in range(ranks):
                t0 = time.perf_counter()
                if rank == 0:
                    result = explainer.explain(batch, target=-1 if target is None else target)
                    order = np.argsort(-result.logits, axis=1, kind="stable")
                else:
                    assert order is not None
                    result = explainer.explain(batch, target=order[:, rank])
                took = (time.perf_counter() - t0) / len(batch)
                probs = _softmax(result.logits)
                for i, path in enumerate(sources):
                    cls = int(result.target[i])
                    item = ImageResult(str(path), rank, cls, names[cls], float(probs[i, cls]),
                                       float(result.logits[i, cls]), result.provider, took)
                    if out_dir is not None:
                        stem = _stem(path, rank, used)
                        base = f"{stem}.{cls}-{_slug(names[cls])}"
                        item.npy, item.png = out_dir / f"{base}.npy", out_dir / f"{base}.png"
                        np.save(item.npy, result.relevance[i])
                        title = f"{path.name}: {names[cls]} ({cls})  score {item.score:.3f}"
                        save_png(panel(photos[i], result.relevance[i], title, spec.layout,
                                       percentile), item.png)
                    report.results.append(item)
        done += len(chunk)
        if progress is not None:
            progress(done, len(files))
    position = {str(path): i for i, path in enumerate(files)}
    report.results.sort(key=lambda r: (position[r.source], r.rank))
    if out_dir is not None:
        report.gallery = write_gallery(out_dir, report.results, report.failures)
    return report


def _stem(path: Path, rank: int, used: dict[str, str]) -> str:
    """A file stem unique in the output folder (``cat``, ``cat-2`` for another ``cat.png``)."""
    key = str(path)
    if key not in used:
        taken = set(used.values())
        stem, n = _slug(path.stem) if path.stem else "image", 1
        candidate = stem
        while candidate in taken:
            n += 1
            candidate = f"{stem}-{n}"
        used[key] = candidate
    return used[key]
