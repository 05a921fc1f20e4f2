"""Photos in, heatmaps out: :func:`explain_images` reads photos and folders, preprocesses them
with a preset, explains them in batches and writes per image and class a panel PNG, the raw
relevance ``.npy`` and an ``index.html`` gallery. Rendering lives in :mod:`aeq_onnx.render.heatmaps`
and reading the inputs in :mod:`aeq_onnx.render.photos`; both are re-exported here.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aeq_onnx.errors import InputError
from aeq_onnx.methods import contrast
from aeq_onnx.render.gallery import write_gallery
from aeq_onnx.render.heatmaps import (
    COLORMAP,
    channel_sum,
    colorize,
    heatmap_rgb,
    normalise,
    overlay,
    panel,
    save_png,
)
from aeq_onnx.render.photos import (
    IMAGE_EXTENSIONS,
    class_by_name,
    collect_images,
    load_image,
    load_labels,
    nothing_usable,
)
from aeq_onnx.render.presets import (
    MAX_PIXELS,
    InputSpec,
    Layout,
    Preset,
    check_max_pixels,
    get_preset,
    input_spec,
    preprocess,
    preset_from_metadata,
)
from aeq_onnx.run.saving import atomic_output, check_output, make_folder

__all__ = [
    "COLORMAP", "IMAGE_EXTENSIONS", "ImageReport", "ImageResult", "channel_sum", "class_by_name",
    "collect_images", "colorize", "explain_images", "heatmap_rgb", "load_image", "load_labels",
    "normalise", "overlay", "panel", "save_png",
]

# --------------------------------------------------------------------------- photos -> maps


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
    versus: str = ""  # contrast versus: the class K compared with, "name (index)"

    @property
    def label(self) -> str:
        """``name (index)``, with `` vs name (index)`` for a versus map."""
        return f"{self.class_name} ({self.class_index})" + (
            f" vs {self.versus}" if self.versus else "")


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


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return slug[:40] or "class"


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_options(target: int | None, target_name: str | None, top_k: int | None,
                   batch_size: int, percentile: float, max_pixels: int) -> None:
    """Refuse options that cannot work, before anything is read or compiled."""
    if sum(v is not None for v in (target, target_name, top_k)) > 1:
        raise InputError("give at most one of target, target_name and top_k")
    if top_k is not None and top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if not 0 < percentile <= 100:
        raise InputError(f"percentile must lie in (0, 100], got {percentile}")
    check_max_pixels(max_pixels)


@dataclass
class _Job:
    """What every batch of :func:`explain_images` needs."""

    explainer: Any
    names: list[str]
    target: int | None
    ranks: int
    preset: Preset
    spec: InputSpec
    percentile: float
    report: ImageReport
    used: dict[str, str] = field(default_factory=dict)
    inputs: set[Path] = field(default_factory=set)  # resolved: never written over


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
    max_pixels: int = MAX_PIXELS,
    **compile_kwargs: Any,
) -> ImageReport:
    """Explain photos (files or folders) with an AE explainer.

    ``model``: a classifier or explainer (path, bytes, ModelProto) or an :class:`Explainer`.
    Classes: ``target`` (index), ``target_name`` (label) or ``top_k`` (each of the k best);
    default the top-1. The preset is ``preset``, else the one stored in the explainer's metadata,
    else ``imagenet``; ``size``/``mean``/``std`` override it. With ``out``, writes per image and
    class a panel PNG (photo | heatmap | overlay) and the raw relevance ``.npy`` (model layout),
    plus ``index.html`` (``out`` and its parents are created; files of earlier runs inside
    ``out`` are not explained again). Unreadable paths, corrupt images and images that cannot
    be written are recorded in ``report.failures`` and skipped (no partial file left); the
    others are explained. Raises :class:`InputError` when no image is found at all, and, before
    any photo is decoded, when the model input exceeds ``max_pixels`` per image
    (:data:`~aeq_onnx.render.presets.MAX_PIXELS`).
    """
    from aeq_onnx.run.runtime import Explainer

    _check_options(target, target_name, top_k, batch_size, percentile, max_pixels)
    out_dir = None if out is None else check_output(out, folder=True, inputs=list(paths),
                                                    what="output folder")
    files, failures = collect_images(paths, exclude=out_dir)
    if not files:
        raise nothing_usable(failures, "explain")
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
    spec = input_spec(list(explainer._input.shape), resolved, max_pixels,
                      explainer.input_dtype.name)
    if spec.raw_pixels and (mean is not None or std is not None):
        raise InputError(f"the model takes {spec.dtype} pixels and normalises inside its "
                         "graph: mean/std do not apply")
    report = ImageReport(failures=failures, preset=resolved, layout=spec.layout)
    if out_dir is not None:
        report.out_dir = make_folder(out_dir)
    job = _Job(explainer, names, target, top_k or 1, resolved, spec, percentile, report,
               inputs={f.resolve() for f in files})
    for start in range(0, len(files), batch_size):
        _explain_batch(job, files[start:start + batch_size])
        if progress is not None:
            progress(min(start + batch_size, len(files)), len(files))
    position = {str(path): i for i, path in enumerate(files)}
    report.results.sort(key=lambda r: (position[r.source], r.rank))
    if out_dir is not None:
        report.gallery = write_gallery(out_dir, report.results, report.failures,
                                       note=contrast.described(explainer.metadata))
    return report


def _explain_batch(job: _Job, chunk: list[Path]) -> None:
    """Read, explain and (with an output folder) write one batch of photos."""
    samples, photos, sources = [], [], []
    for path in chunk:
        try:
            x, photo = preprocess(load_image(path), job.preset, job.spec)
        except InputError as exc:
            job.report.failures.append((str(path), str(exc)))
            continue
        samples.append(x)
        photos.append(photo)
        sources.append(path)
    if not samples:
        return
    batch = np.stack(samples)
    order: np.ndarray | None = None
    failed: set[str] = set()
    items: list[ImageResult] = []
    for rank in range(job.ranks):
        t0 = time.perf_counter()
        if rank == 0:
            result = job.explainer.explain(batch, target=-1 if job.target is None else job.target)
            order = np.argsort(-result.logits, axis=1, kind="stable")
        else:
            assert order is not None
            result = job.explainer.explain(batch, target=order[:, rank])
        took = (time.perf_counter() - t0) / len(batch)
        probs = _softmax(result.logits)
        versus = contrast.versus_classes(job.explainer.metadata, result.logits, result.target)
        for i, path in enumerate(sources):
            if str(path) in failed:
                continue
            cls = int(result.target[i])
            item = ImageResult(str(path), rank, cls, job.names[cls], float(probs[i, cls]),
                               float(result.logits[i, cls]), result.provider, took,
                               versus=contrast.versus_label(job.names, versus, i, cls))
            if job.report.out_dir is not None:
                try:
                    _write_item(job, item, path, photos[i], result.relevance[i])
                except InputError as exc:
                    failed.add(str(path))
                    job.report.failures.append((str(path), str(exc)))
                    continue
            items.append(item)
    _drop_failed(items, failed)
    job.report.results.extend(r for r in items if r.source not in failed)


def _write_item(job: _Job, item: ImageResult, path: Path, photo: Any,
                relevance: np.ndarray) -> None:
    """Write the item's relevance .npy and panel PNG; on failure neither is left behind."""
    out_dir = job.report.out_dir
    assert out_dir is not None
    base = f"{_stem(path, item.rank, job.used)}.{item.class_index}-{_slug(item.class_name)}"
    item.npy, item.png = out_dir / f"{base}.npy", out_dir / f"{base}.png"
    if {item.npy.resolve(), item.png.resolve()} & job.inputs:
        raise InputError(f"its output {item.png.name} would overwrite an input photo")
    try:
        with atomic_output(item.npy) as part, open(part, "wb") as handle:
            np.save(handle, relevance)
        title = f"{path.name}: {item.label}  score {item.score:.3f}"
        with atomic_output(item.png) as part:
            save_png(panel(photo, relevance, title, job.spec.layout, job.percentile), part)
    except InputError:
        item.npy.unlink(missing_ok=True)
        item.png.unlink(missing_ok=True)
        raise


def _drop_failed(items: list[ImageResult], failed: set[str]) -> None:
    """Remove the files of the other ranks of an image whose writing failed."""
    for item in items:
        if item.source in failed:
            for written in (item.npy, item.png):
                if written is not None:
                    written.unlink(missing_ok=True)


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
