"""Heatmaps per method: a compiled explainer (white-box methods) or RISE through the plain
model. Every runner maps a batch in the model's layout and its targets to ``(N, H, W)`` heatmaps
(the channel sum of the relevance, :func:`aeq_onnx.render.imaging.channel_sum`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from aeq_onnx.audit.forward import Forward, to_nchw
from aeq_onnx.audit.methods import RISE, MethodSpec, cached_explainer
from aeq_onnx.audit.rise import rise_saliency
from aeq_onnx.errors import InputError
from aeq_onnx.render.imaging import channel_sum
from aeq_onnx.render.presets import Layout
from aeq_onnx.run.runtime import Device, make_session


class ExplainerRunner:
    """A white-box method compiled into an explainer model and run by onnxruntime."""

    def __init__(self, proto: onnx.ModelProto, layout: Layout, device: Device,
                 threads: int | None) -> None:
        self.session = make_session(proto, device, threads)
        self.input = self.session.get_inputs()[0].name
        self.layout = layout

    def heat(self, batch: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` heatmaps for ``targets``."""
        (relevance,) = self.session.run(["relevance"], {self.input: batch, "target": targets})
        return np.stack([channel_sum(r, self.layout) for r in relevance])


class RiseRunner:
    """Black-box RISE (Petsiuk et al. 2018) through the plain forward pass."""

    def __init__(self, forward: Forward, spec: MethodSpec, batch_size: int) -> None:
        self.forward = forward
        known = {"masks", "cell", "p", "seed"}
        unknown = set(spec.options) - known
        if unknown:
            raise InputError(f"unknown RISE option(s) {sorted(unknown)} (known: {sorted(known)})")
        self.masks = int(spec.options.get("masks", 4000))
        self.cell = int(spec.options.get("cell", 7))
        self.p = float(spec.options.get("p", 0.5))
        self.seed = int(spec.options.get("seed", 0))
        self.batch_size = max(batch_size, 16)

    def heat(self, batch: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` RISE saliency for ``targets``."""
        return rise_saliency(self.forward.predict, to_nchw(batch, self.forward.layout),
                             targets, n_masks=self.masks, cell=self.cell, p=self.p,
                             batch_size=self.batch_size, seed=self.seed)


Runner = ExplainerRunner | RiseRunner


def make_runner(model: onnx.ModelProto, spec: MethodSpec, forward: Forward, *,
                folder: Path | None, source_sha: str, device: Device, threads: int | None,
                batch_size: int, isolate: bool | None = None) -> Runner:
    """The runner of ``spec`` (compiling, or reusing the cached explainer in ``folder``)."""
    if spec.name == RISE:
        return RiseRunner(forward, spec, batch_size)
    proto = cached_explainer(model, spec, folder, source_sha, isolate)
    return ExplainerRunner(proto, forward.layout, device, threads)
