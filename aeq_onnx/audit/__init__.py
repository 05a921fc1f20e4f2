"""``aeq audit``: attribution methods x faithfulness and localisation metrics over a set of
images, on onnxruntime only (no framework), with reports in JSON, Markdown and HTML.

:func:`audit` is the API behind the command: gather the cases (images, and ground truth from a
masks folder, a boxes file, PASCAL VOC or COCO), run :func:`engine.run_audit`, write the report.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aeq_onnx.audit import ray_engine
from aeq_onnx.audit.cases import Case, cases_for, plain_cases, unique_keys
from aeq_onnx.audit.config import (
    AuditConfig,
    AuditRun,
    GroundTruthSource,
    Progress,
    RayOptions,
)
from aeq_onnx.audit.datasets.mapping import load_mapping
from aeq_onnx.audit.datasets.records import LoadResult
from aeq_onnx.audit.engine import run_audit
from aeq_onnx.audit.methods import DEFAULT_METHODS, parse_methods
from aeq_onnx.audit.report import write
from aeq_onnx.audit.scoring import CurveSettings
from aeq_onnx.errors import InputError
from aeq_onnx.load.loading import load_model
from aeq_onnx.render.photos import collect_images, nothing_usable
from aeq_onnx.render.presets import MAX_PIXELS, Preset, check_max_pixels, get_preset, input_spec
from aeq_onnx.rules import registry
from aeq_onnx.run.runtime import Device, is_explainer
from aeq_onnx.run.saving import check_output, make_folder

__all__ = ["AuditResult", "GroundTruthSource", "RayOptions", "audit", "gather_cases"]


@dataclass
class AuditResult:
    """The engine's output, the report files and the cases that were tried."""

    run: AuditRun
    report: dict[str, Path]
    cases: list[Case] = field(default_factory=list)


def _image_dir(source: GroundTruthSource) -> Path:
    if len(source.images) != 1 or not Path(source.images[0]).is_dir():
        raise InputError("--masks, --boxes and --coco need --images to be one folder")
    return Path(source.images[0])


def _loaded(source: GroundTruthSource) -> LoadResult | None:
    """The annotations of the chosen format (lenient: bad items are failures)."""
    from aeq_onnx.audit.datasets import coco, user, voc

    given = [n for n in ("masks", "boxes", "voc", "coco", "manifest")
             if getattr(source, n) is not None]
    if len(given) > 1:
        raise InputError(f"give at most one ground-truth source, got {', '.join(given)}")
    mapping = load_mapping(source.mapping) if source.mapping is not None else None
    if source.manifest is not None:
        from aeq_onnx.audit.datasets.manifest import load_manifest

        return load_manifest(source.manifest, mapping, strict=False)
    if source.voc is not None:
        return voc.load_voc(source.voc, mapping, strict=False)
    if source.coco is not None:
        return coco.load_coco(source.coco, _image_dir(source), mapping, strict=False)
    if source.boxes is not None:
        return user.load_boxes(source.boxes, _image_dir(source), mapping, strict=False)
    if source.masks is not None:
        return user.load_masks(source.masks, _image_dir(source), mapping=mapping, strict=False)
    return None


def gather_cases(source: GroundTruthSource, exclude: str | os.PathLike[str] | None = None,
                 ) -> tuple[list[Case], list[tuple[str, str]]]:
    """The cases to explain and the items that cannot be used ``(item, why)``; image files
    under ``exclude`` (the output folder) are not cases."""
    loaded = _loaded(source)
    if loaded is None:
        files, failures = collect_images(source.images, exclude=exclude)
        return unique_keys(plain_cases(files)), failures
    failures = [(e.item, e.message) for e in loaded.errors]
    if source.manifest is not None:  # rows may carry a label without a region
        from aeq_onnx.audit.datasets.manifest import manifest_cases

        return manifest_cases(loaded), failures
    cases = [c for item in loaded.items for c in cases_for(item)]
    return unique_keys(cases), failures


def _input_shape(model: Any) -> list[Any]:
    """The dims of the model's data input (symbolic dims as their names)."""
    if is_explainer(model):
        raise InputError("this is an explainer built by aeq build; an audit compiles its "
                         "methods from the classifier: give the classifier .onnx")
    weights = {t.name for t in model.graph.initializer}
    data = [i for i in model.graph.input if i.name not in weights]
    if len(data) != 1:
        raise InputError(f"an audit needs a model with one data input, found {len(data)}")
    dims = data[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def _info(model: str | os.PathLike[str], sha: str, preset: Preset, command: str,
          curves: CurveSettings) -> dict[str, Any]:
    return {"model": Path(model).name, "sha256": sha, "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "preset": preset.to_json(), "curve_steps": curves.steps,
            "curve_baselines": list(curves.baselines)}


def audit(model: str | os.PathLike[str], source: GroundTruthSource, *,
          methods: str = DEFAULT_METHODS, out: str | os.PathLike[str] = "aeq-audit",
          preset: str | Preset | None = None, size: int | None = None,
          curves: CurveSettings | None = None, batch_size: int = 8, sanity_cases: int = 0,
          device: Device = "cpu", threads: int | None = None, output: str | None = None,
          progress: Progress | None = None, command: str = "",
          engine: RayOptions | None = None, max_pixels: int = MAX_PIXELS,
          isolate: bool | None = None, class_sensitivity: bool = False,
          randomisation_cases: int = 0,
          randomisation_levels: Sequence[int | str] = (1, 5, 15, "all")) -> AuditResult:
    """Run every method on every case and write ``report.{json,md,html}`` into ``out``.

    ``engine`` None runs locally; :class:`RayOptions` runs the cases on a Ray cluster
    (``aeq_onnx[ray]``), with the same rows and report. Re-running with the same ``out``
    resumes: stored results are reused. Bad items (unreadable
    images, masks of the wrong size, a method that cannot run on this model) are listed in the
    report's failures; the rest completes. ``out`` (created with its parents) must not be one
    of the inputs; a model input over ``max_pixels`` per image is refused before any photo is
    read (:func:`aeq_onnx.render.presets.input_spec`). ``isolate`` runs the checks of the model
    and of every explainer compiled from it in a limited child process
    (:func:`aeq_onnx.load.load_model`). ``class_sensitivity`` also explains each case's
    runner-up class and scores the rank correlation of the two maps (twice the explanations);
    ``randomisation_cases`` > 0 runs the weight-randomisation check (classifier first,
    :mod:`aeq_onnx.audit.randomisation`) on that many cases, at ``randomisation_levels``
    (weight tensors re-drawn from the output; ``"all"``).
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if sanity_cases < 0 or randomisation_cases < 0:
        raise InputError(f"sanity and randomisation cases must be >= 0, got {sanity_cases} "
                         f"and {randomisation_cases}")
    check_max_pixels(max_pixels)
    chosen = parse_methods(methods)
    sources = [model, *source.images, source.masks, source.boxes, source.voc, source.coco,
               source.mapping, source.manifest]
    check_output(out, folder=True, inputs=sources, what="output folder")
    resolved = get_preset(preset if preset is not None else "imagenet", size=size)
    loaded = load_model(model, isolate=isolate, accepted_ops=registry.custom_ops())
    spec = input_spec(_input_shape(loaded.model), resolved, max_pixels)
    cases, failures = gather_cases(source, exclude=out)
    if not cases:
        raise nothing_usable(failures, "audit")
    make_folder(out)
    settings = curves or CurveSettings()
    config = AuditConfig(chosen, Path(out), resolved, spec, settings, batch_size,
                         sanity_cases, device=device, threads=threads,
                         output=output, progress=progress, isolate=isolate,
                         class_sensitivity=class_sensitivity,
                         randomisation_cases=randomisation_cases,
                         randomisation_levels=tuple(randomisation_levels))
    if engine is None:
        run = run_audit(loaded.model, loaded.sha256, cases, config)
    else:
        run = ray_engine.run_audit_ray(loaded.model, loaded.sha256, cases, config, engine)
    run.failures[:0] = failures
    report = write(run, config, _info(model, loaded.sha256, resolved, command, settings))
    return AuditResult(run, report, cases)
