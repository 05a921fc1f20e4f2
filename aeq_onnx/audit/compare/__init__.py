"""``aeq compare``: did quantization, fp16 or pruning change what a model looks at?

:func:`compare` explains two models (A: the reference, B: e.g. its deployed version) on the
same preprocessed photos for the same target class (A's top-1 unless ``target``), and reports
per image how far they agree (:mod:`.agreement`: top-1, top-5 overlap, Spearman, SSIM and the
IoU of the top-10 % pixels of the heatmaps) with a summary over the images, as
``compare.json``, ``compare.md`` and an ``index.html`` gallery with both heatmaps side by side
(:mod:`.report`). Images are taken in sorted path order and the summary is summed with
``math.fsum`` over rows sorted by image, so the output does not depend on the order the photos
were given in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aeq_onnx.audit.compare.agreement import agreement, summarise
from aeq_onnx.audit.compare.report import write_reports
from aeq_onnx.errors import InputError
from aeq_onnx.render.heatmaps import channel_sum
from aeq_onnx.render.photos import collect_images, load_image, load_labels, nothing_usable
from aeq_onnx.render.presets import (
    MAX_PIXELS,
    InputSpec,
    Preset,
    check_max_pixels,
    get_preset,
    input_spec,
    preprocess,
    preset_from_metadata,
)
from aeq_onnx.run.saving import check_output, make_folder

__all__ = ["Comparison", "compare"]


@dataclass
class Comparison:
    """What :func:`compare` found: one row per image (sorted by image), the summary, the
    images that could not be used ``(path, message)``, the run's settings and the files."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    failures: list[tuple[str, str]]
    info: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class _Side:
    """One model of the comparison: its explainer and how its input looks."""

    explainer: Any
    spec: InputSpec


def _name(model: Any) -> str:
    return os.fspath(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64) - np.max(logits)
    e = np.exp(z)
    return e / e.sum()


def _open(model: Any, device: str, threads: int | None, compile_kwargs: dict[str, Any]) -> Any:
    """The explainer of ``model`` (errors about a file name its path)."""
    from aeq_onnx.run.runtime import Explainer

    if isinstance(model, Explainer):
        return model
    return Explainer(model, device=device, threads=threads,  # type: ignore[arg-type]
                     **compile_kwargs)


def _check_pair(a: _Side, b: _Side) -> None:
    """Refuse two models that cannot be compared image by image."""
    if a.explainer.classes != b.explainer.classes:
        raise InputError(f"model A has {a.explainer.classes} classes and model B "
                         f"{b.explainer.classes}: compare needs the same classes")
    size_a, size_b = (a.spec.height, a.spec.width), (b.spec.height, b.spec.width)
    if size_a != size_b or a.spec.channels != b.spec.channels:
        raise InputError(f"model A takes {a.spec.channels}x{size_a[0]}x{size_a[1]} images and "
                         f"model B {b.spec.channels}x{size_b[0]}x{size_b[1]}: compare needs "
                         "the same input size")


def _check_options(batch_size: int, fraction: float, max_pixels: int) -> None:
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if not 0 < fraction <= 1:
        raise InputError(f"top fraction must lie in (0, 1], got {fraction}")
    check_max_pixels(max_pixels)


def compare(
    model_a: Any,
    model_b: Any,
    images: Sequence[str | os.PathLike[str]],
    *,
    target: int | None = None,
    labels: str | os.PathLike[str] | Sequence[str] | None = None,
    preset: str | Preset | None = None,
    size: int | None = None,
    out: str | os.PathLike[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    batch_size: int = 8,
    top_fraction: float = 0.1,
    max_pixels: int = MAX_PIXELS,
    progress: Callable[[int, int], None] | None = None,
    **compile_kwargs: Any,
) -> Comparison:
    """Explain ``model_a`` and ``model_b`` (classifiers or explainers: paths, bytes, protos or
    :class:`~aeq_onnx.Explainer` objects, compiled with the same ``compile_kwargs``) on the
    photos (files or folders) ``images`` and compare them image by image.

    The target class is A's top-1, or ``target`` for every image; B explains the same class.
    The preset is ``preset``, else A's stored one, else B's, else ``imagenet`` (``size``
    overrides it); each model gets the photo in its own layout, and both must take images of
    one size and have the same classes. With ``out``, writes ``compare.json``,
    ``compare.md``, ``index.html`` and one PNG per image (photo | heatmap A | heatmap B)
    there. Unreadable photos are recorded in ``failures``; :class:`InputError` when none is
    usable.
    """
    _check_options(batch_size, top_fraction, max_pixels)
    given = [model for model in (model_a, model_b) if isinstance(model, (str, os.PathLike))]
    out_dir = None if out is None else check_output(out, folder=True,
                                                    inputs=[*images, *given],
                                                    what="output folder")
    files, failures = collect_images(images, exclude=out_dir)
    files = sorted(set(files), key=str)
    if not files:
        raise nothing_usable(failures, "compare")
    explainer_a = _open(model_a, device, threads, compile_kwargs)
    explainer_b = _open(model_b, device, threads, compile_kwargs)
    if preset is None:
        preset = (preset_from_metadata(explainer_a.metadata)
                  or preset_from_metadata(explainer_b.metadata))
    resolved = get_preset(preset, size=size)
    a, b = (_Side(e, input_spec(list(e._input.shape), resolved, max_pixels))
            for e in (explainer_a, explainer_b))
    _check_pair(a, b)
    names = load_labels(labels, a.explainer.classes)
    if target is not None:
        a.explainer.check_target(target, 1)
    rows: list[dict[str, Any]] = []
    pictures: dict[str, tuple[Any, np.ndarray, np.ndarray]] = {}
    for start in range(0, len(files), batch_size):
        _batch(files[start:start + batch_size], a, b, resolved, target, top_fraction, names,
               rows, pictures, failures)
        if progress is not None:
            progress(min(start + batch_size, len(files)), len(files))
    rows.sort(key=lambda r: r["image"])
    failures = sorted(failures)
    info = {
        "model_a": _name(model_a), "model_b": _name(model_b),
        "classes": a.explainer.classes, "preset": resolved.name,
        "target": "top-1 of A" if target is None else int(target),
        "method": a.explainer.metadata.get("method"), "top_fraction": top_fraction,
        "layout_a": a.spec.layout, "layout_b": b.spec.layout,
    }
    result = Comparison(rows, summarise(rows), failures, info)
    if out_dir is not None and (rows or failures):
        result.files = write_reports(make_folder(out_dir), result, pictures)
    return result


def _batch(files: Sequence[Path], a: _Side, b: _Side, preset: Preset, target: int | None,
           fraction: float, names: Sequence[str], rows: list[dict[str, Any]],
           pictures: dict[str, tuple[Any, np.ndarray, np.ndarray]],
           failures: list[tuple[str, str]]) -> None:
    """Explain one batch with both models (B for A's targets) and add its rows."""
    loaded: list[tuple[Path, np.ndarray, np.ndarray, Any]] = []
    for path in files:
        try:
            photo = load_image(path)
            x_a, crop = preprocess(photo, preset, a.spec)
            x_b, _ = preprocess(photo, preset, b.spec)
        except InputError as exc:
            failures.append((str(path), str(exc)))
            continue
        loaded.append((path, x_a, x_b, crop))
    if not loaded:
        return
    wanted = -1 if target is None else target
    got_a = a.explainer.explain(np.stack([item[1] for item in loaded]), target=wanted)
    got_b = b.explainer.explain(np.stack([item[2] for item in loaded]), target=got_a.target)
    for i, (path, _, _, crop) in enumerate(loaded):
        cls = int(got_a.target[i])
        heat_a = channel_sum(got_a.relevance[i], a.spec.layout)
        heat_b = channel_sum(got_b.relevance[i], b.spec.layout)
        row: dict[str, Any] = {
            "image": str(path), "target": cls, "target_name": names[cls],
            "prob_a": float(_softmax(got_a.logits[i])[cls]),
            "prob_b": float(_softmax(got_b.logits[i])[cls]),
        }
        row.update(agreement(got_a.logits[i], got_b.logits[i], heat_a, heat_b, fraction))
        rows.append(row)
        pictures[str(path)] = (crop, heat_a, heat_b)
