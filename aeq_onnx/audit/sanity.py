"""The cascading model-parameter randomisation sanity check (Adebayo et al., NeurIPS 2018) in an
audit: the layers are re-drawn one more at a time from the output
(:func:`aeq_onnx.audit.metrics.cascading_randomisation`), each method is re-run on the randomised
model for the same cases and targets, and its heatmap is compared with the original by SSIM and
Spearman rank correlation (signed and of absolute values). A method whose heatmaps stay similar
while the model is destroyed does not explain the model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from aeq_onnx.audit.cases import Case, prepare
from aeq_onnx.audit.config import AuditConfig, AuditRun
from aeq_onnx.audit.forward import Forward
from aeq_onnx.audit.methods import MethodSpec
from aeq_onnx.audit.metrics import cascading_randomisation, randomisable_layers, spearman, ssim
from aeq_onnx.audit.runners import Runner, make_runner
from aeq_onnx.audit.store import ResultStore, Row
from aeq_onnx.errors import AeqError

Original = tuple[Case, np.ndarray, int, dict[str, np.ndarray]]


def originals(cases: Sequence[Case], config: AuditConfig, labels: list[str],
              count: int | None = None) -> list[Original]:
    """The first ``count`` (default ``sanity_cases``) cases with a result for every method:
    sample, target, heats."""
    count = config.sanity_cases if count is None else count
    results = ResultStore(config.out)
    chosen: list[Original] = []
    for case in cases:
        rows = [results.get(case.key, label) for label in labels]
        if any(r is None for r in rows) or len(chosen) >= count:
            continue
        heats = {lb: np.load(config.out / str(r["heatmap"]))  # type: ignore[index]
                 for lb, r in zip(labels, rows, strict=True)}
        sample = prepare(case, config.spec, config.preset).sample
        chosen.append((case, sample, int(rows[0]["target"]), heats))  # type: ignore[index]
    return chosen


def _compare(case: Case, label: str, step: int, layer: str, original: np.ndarray,
             heat: np.ndarray) -> Row:
    """SSIM and Spearman (signed and of |R|) of the randomised heatmap against the original.

    A constant map has no ranks: its Spearman correlation is reported as 0 (it shares no rank
    structure with the original), not as undefined."""
    def rank(v: float) -> float:
        return float(v) if np.isfinite(v) else 0.0

    return {"case": case.key, "method": label, "step": str(step), "layer": layer,
            "ssim": float(ssim(original, heat)), "spearman": rank(spearman(original, heat)),
            "spearman_abs": rank(spearman(original, heat, absolute=True))}


def _step(randomised: onnx.ModelProto, step: int, layer: str,
          runners: dict[str, tuple[MethodSpec, Runner]], chosen: list[Original], store: ResultStore,
          config: AuditConfig, run: AuditRun) -> None:
    """Every method on one randomised model for the chosen cases missing this step."""
    forward = None
    for label, (spec, _) in runners.items():
        todo = [c for c in chosen if store.get(c[0].key, label, str(step)) is None]
        if not todo:
            continue
        try:
            forward = forward or Forward(randomised, config.spec.layout, config.device,
                                         config.threads, config.output)
            runner = make_runner(randomised, spec, forward, folder=None, source_sha="",
                                 device=config.device, threads=config.threads,
                                 batch_size=config.batch_size, isolate=config.isolate)
            heats = runner.heat(np.stack([c[1] for c in todo]),
                                np.array([c[2] for c in todo], np.int64))
        except AeqError as exc:
            run.failures.append((f"sanity check of {label} at layer {layer}", str(exc)))
            continue
        for (case, _, _, originals), heat in zip(todo, heats, strict=True):
            store.put(_compare(case, label, step, layer, originals[label], heat))


def run_sanity(model: onnx.ModelProto, cases: Sequence[Case],
               runners: dict[str, tuple[MethodSpec, Runner]], forward: Forward,
               config: AuditConfig, run: AuditRun) -> list[Row]:
    """Sanity rows for the first ``config.sanity_cases`` cases (stored in ``sanity.jsonl``)."""
    chosen = originals(cases, config, list(runners))
    store = ResultStore(config.out, "sanity.jsonl")
    if not chosen:
        return []
    total = len(randomisable_layers(model))
    if total == 0:
        run.failures.append(("sanity check", "no Conv/Gemm/MatMul layer with weights"))
        return []
    for step, (layer, randomised) in enumerate(
            cascading_randomisation(model, seed=config.sanity_seed), start=1):
        _step(randomised, step, layer, runners, chosen, store, config, run)
        if config.progress is not None:
            config.progress(step, total)
    keys = {c[0].key for c in chosen}
    return [r for r in store.rows.values() if r["case"] in keys and r["method"] in runners]
