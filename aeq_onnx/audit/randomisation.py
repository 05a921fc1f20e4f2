"""The weight-randomisation check of an audit (Adebayo et al. 2018, cascading, classifier
first; issue 23): the model's weight tensors are re-drawn from the output towards the input
(:func:`aeq_onnx.audit.metrics.randomise_weights`: ``N(0, std^2)`` of each tensor's own values,
seeded, biases kept), at levels of 1 tensor (the classifier), the top 5, the top 15 and all of
them by default. Every method of the audit is compiled for each randomised model by the normal
compile path (cached under ``OUT/explainers/randomised/SHA/``, ``SHA`` the randomised model's
content hash, so a re-run reuses them) and run for the same cases and the *original* targets;
its heatmap is compared with the original one by Spearman rank correlation, signed and of
``|R|``. A method whose map keeps its ranks once the classifier is re-drawn does not depend on
the class layer. Rows go to ``OUT/randomisation.jsonl`` (a re-run resumes)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import onnx

from aeq_onnx.audit.cases import Case
from aeq_onnx.audit.config import AuditConfig, AuditRun
from aeq_onnx.audit.forward import Forward
from aeq_onnx.audit.methods import MethodSpec
from aeq_onnx.audit.metrics import randomise_weights, spearman, weight_tensors
from aeq_onnx.audit.runners import Runner, make_runner
from aeq_onnx.audit.sanity import Original, originals
from aeq_onnx.audit.store import ResultStore, Row
from aeq_onnx.errors import AeqError, InputError

FILE = "randomisation.jsonl"


def resolve_levels(levels: Sequence[int | str], total: int) -> list[tuple[int, str]]:
    """``(tensors re-drawn, name)`` per level, in increasing order, once each: a count past
    ``total`` or ``"all"`` is every tensor; 1 is ``classifier``, 0 ``none``."""
    counts = set()
    for level in levels:
        if level == "all":
            counts.add(total)
        elif isinstance(level, int) and not isinstance(level, bool) and level >= 0:
            counts.add(min(level, total))
        else:
            raise InputError(f"a randomisation level is a tensor count >= 0 or 'all', "
                             f"got {level!r}")

    def name(k: int) -> str:
        return {0: "none", 1: "classifier", total: "all"}.get(k, f"top {k}")
    return [(k, name(k)) for k in sorted(counts)]


def content_sha(model: onnx.ModelProto) -> str:
    """sha256 of the serialised model (what the compiler records as its source)."""
    return hashlib.sha256(model.SerializeToString()).hexdigest()


def _rank(value: float) -> float:
    """A constant map has no ranks: 0 (it shares no rank structure), not undefined."""
    return float(value) if np.isfinite(value) else 0.0


def _level(randomised: onnx.ModelProto, count: int, name: str,
           runners: dict[str, tuple[MethodSpec, Runner]], chosen: list[Original],
           store: ResultStore, config: AuditConfig, run: AuditRun) -> None:
    """Every method on one randomised model for the chosen cases missing this level."""
    sha, forward = content_sha(randomised), None
    for label, (spec, _) in runners.items():
        todo = [c for c in chosen if store.get(c[0].key, label, str(count)) is None]
        if not todo:
            continue
        try:
            forward = forward or Forward(randomised, config.spec.layout, config.device,
                                         config.threads, config.output)
            runner = make_runner(randomised, spec, forward,
                                 folder=config.out / "explainers" / "randomised" / sha[:16],
                                 source_sha=sha, device=config.device, threads=config.threads,
                                 batch_size=config.batch_size, isolate=config.isolate)
            heats = runner.heat(np.stack([c[1] for c in todo]),
                                np.array([c[2] for c in todo], np.int64))
        except AeqError as exc:
            run.failures.append((f"randomisation check of {label} at level {name}", str(exc)))
            continue
        for (case, _, _, before), heat in zip(todo, heats, strict=True):
            store.put({"case": case.key, "method": label, "step": str(count), "level": name,
                       "spearman": _rank(spearman(before[label], heat)),
                       "spearman_abs": _rank(spearman(before[label], heat, absolute=True))})


def run_randomisation(model: onnx.ModelProto, cases: Sequence[Case],
                      runners: dict[str, tuple[MethodSpec, Runner]], config: AuditConfig,
                      run: AuditRun) -> list[Row]:
    """Randomisation rows for the first ``config.randomisation_cases`` cases."""
    chosen = originals(cases, config, list(runners), config.randomisation_cases)
    if not chosen:
        return []
    names = weight_tensors(model)
    if not names:
        run.failures.append(("randomisation check", "no Conv/Gemm/MatMul layer with weights"))
        return []
    levels = resolve_levels(config.randomisation_levels, len(names))
    store = ResultStore(config.out, FILE)
    for done, (count, name) in enumerate(levels, start=1):
        randomised = randomise_weights(model, count, config.randomisation_seed, names)
        _level(randomised, count, name, runners, chosen, store, config, run)
        if config.progress is not None:
            config.progress(done, len(levels))
    keys, wanted = {c[0].key for c in chosen}, {str(k) for k, _ in levels}
    return [r for r in store.rows.values()
            if r["case"] in keys and r["method"] in runners and r["step"] in wanted]
