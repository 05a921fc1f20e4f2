"""What an audit is asked to do and what it produced: where the ground truth comes from, the
Ray options, the engine's configuration and its run (shared by the local and the Ray engine,
the sanity check and the report)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aeq_onnx.audit.methods import MethodSpec
from aeq_onnx.audit.scoring import CurveSettings
from aeq_onnx.audit.store import Row
from aeq_onnx.errors import InputError
from aeq_onnx.render.presets import InputSpec, Preset
from aeq_onnx.run.runtime import Device


@dataclass(frozen=True)
class GroundTruthSource:
    """Where the ground truth comes from (at most one of masks, boxes, voc, coco)."""

    images: Sequence[str | os.PathLike[str]] = ()
    masks: str | os.PathLike[str] | None = None
    boxes: str | os.PathLike[str] | None = None
    voc: str | os.PathLike[str] | None = None
    coco: str | os.PathLike[str] | None = None
    mapping: str | os.PathLike[str] | None = None
    manifest: str | os.PathLike[str] | None = None


@dataclass(frozen=True)
class RayOptions:
    """``--engine ray``: cluster address (None: start a local one), actors, GPUs per actor."""

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 1 or not self.gpus_per_worker >= 0:
            raise InputError(f"Ray needs workers >= 1 and gpus_per_worker >= 0, got "
                             f"{self.workers} and {self.gpus_per_worker}")


Progress = Callable[[int, int], None]


@dataclass
class AuditConfig:
    """What to run and how: methods, output folder, preprocessing, curves and runtime."""

    methods: list[MethodSpec]
    out: Path
    preset: Preset
    spec: InputSpec
    curves: CurveSettings = field(default_factory=CurveSettings)
    batch_size: int = 8
    sanity_cases: int = 0
    sanity_seed: int = 0
    #: Explain each case's runner-up class too and score the two maps' rank correlation.
    class_sensitivity: bool = False
    #: Weight-randomisation check (:mod:`.randomisation`) on this many cases (0: off).
    randomisation_cases: int = 0
    #: Its levels: how many weight tensors are re-drawn from the output (0: none; "all").
    randomisation_levels: tuple[int | str, ...] = (1, 5, 15, "all")
    randomisation_seed: int = 0
    device: Device = "cpu"
    threads: int | None = None
    output: str | None = None
    progress: Progress | None = None
    #: Run the model checks in a limited child process (None: the AEQ_ISOLATE fallback).
    isolate: bool | None = None


@dataclass
class AuditRun:
    """What the engine produced: result rows, sanity rows, per-item failures, the methods and
    the weight-randomisation rows."""

    rows: list[Row] = field(default_factory=list)
    sanity: list[Row] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    randomisation: list[Row] = field(default_factory=list)


