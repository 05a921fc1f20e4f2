"""The local audit engine: every method on every case, every metric the case allows, results
stored as they come (a re-run resumes), failures recorded per item while the rest completes.

Per chunk of ``batch_size`` cases: read and preprocess the photos, choose the targets from the
model's logits, then per method compute the heatmaps and score them (:mod:`.scoring`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import onnx

from aeq_onnx.audit.cases import Case, Prepared, choose_targets, prepare
from aeq_onnx.audit.config import AuditConfig, AuditRun
from aeq_onnx.audit.forward import Forward, to_nchw
from aeq_onnx.audit.methods import MethodSpec
from aeq_onnx.audit.metrics import class_sensitivity, softmax
from aeq_onnx.audit.randomisation import run_randomisation
from aeq_onnx.audit.runners import Runner, make_runner
from aeq_onnx.audit.sanity import run_sanity
from aeq_onnx.audit.scoring import curves, localisation
from aeq_onnx.audit.store import ResultStore, Row, canonical
from aeq_onnx.errors import AeqError


def finite(value: float) -> float | None:
    """JSON-safe number: None for NaN/Inf."""
    return float(value) if math.isfinite(value) else None


def chunks(items: Sequence[Case], size: int) -> Iterator[Sequence[Case]]:
    """Consecutive slices of ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def build_runners(model: onnx.ModelProto, config: AuditConfig, forward: Forward,
                  source_sha: str, failures: list[tuple[str, str]],
                  ) -> dict[str, tuple[MethodSpec, Runner]]:
    """One runner per method; a method that cannot run on this model is a failure."""
    runners = {}
    for spec in config.methods:
        try:
            runners[spec.label] = (spec, make_runner(
                model, spec, forward, folder=config.out / "explainers", source_sha=source_sha,
                device=config.device, threads=config.threads, batch_size=config.batch_size,
                isolate=config.isolate))
        except AeqError as exc:
            failures.append((f"method {spec.label}", str(exc)))
    return runners


def runner_ups(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per sample the best-scoring class other than its target (the top-2 when the target is
    the top-1); ties go to the lower index."""
    masked = np.array(logits, dtype=np.float64, copy=True)
    masked[np.arange(len(targets)), targets] = -np.inf
    return np.argmax(masked, axis=1).astype(np.int64)


def heat_slug(label: str) -> str:
    """A method label as a folder name."""
    return label.replace(":", "_").replace("=", "-").replace(",", "_")


class Worker:
    """What one process needs to explain and score cases: the forward pass and one runner per
    method. The local engine holds one; the Ray engine one per actor. Heatmaps are written to
    ``config.out/heatmaps/`` (idempotent: same case, same file); rows are returned."""

    def __init__(self, model: onnx.ModelProto, source_sha: str, config: AuditConfig) -> None:
        self.config = config
        self.failures: list[tuple[str, str]] = []
        self.forward = Forward(model, config.spec.layout, config.device, config.threads,
                               config.output)
        self.runners = build_runners(model, config, self.forward, source_sha, self.failures)
        self.store = ResultStore(config.out, name=None)

    def prepare(self, chunk: Sequence[Case]) -> list[Prepared]:
        """Preprocess the photos; unreadable ones and bad masks are failures."""
        ready = []
        for case in chunk:
            try:
                ready.append(prepare(case, self.config.spec, self.config.preset))
            except AeqError as exc:
                self.failures.append((str(case.path), str(exc)))
        return ready

    def score(self, item: Prepared, target: int, prob: float, heat: np.ndarray,
              label: str) -> Row:
        """The row of one case and method: identity, score and every metric it allows."""
        path = self.store.save_heat(heat_slug(label), item.case.key, heat)
        row: Row = {"case": item.case.key, "method": label, "path": str(item.case.path),
                    "class": item.case.class_name, "target": target, "probability": prob,
                    "heatmap": path.relative_to(self.config.out).as_posix()}
        if item.mask is not None:
            row.update({k: finite(v) for k, v in
                        localisation(heat, item.mask, item.distractors).items()})
        sample = to_nchw(item.sample[None], self.forward.layout)[0]
        aucs, shapes = curves(self.forward.predict, sample, heat, target, self.config.curves)
        row.update({k: finite(v) for k, v in aucs.items()})
        row["curves"] = shapes
        return row

    def process(self, chunk: Sequence[Case], done: Callable[[str, str], bool]) -> list[Row]:
        """Rows for every (case, method) of ``chunk`` that ``done`` does not already have."""
        ready = self.prepare(chunk)
        if not ready or not self.runners:
            return []
        nchw = to_nchw(np.stack([r.sample for r in ready]), self.forward.layout)
        try:
            targets = choose_targets(self.forward.logits(nchw), [r.case for r in ready])
        except AeqError as exc:
            self.failures.extend((str(r.case.path), str(exc)) for r in ready)
            return []
        logits = self.forward.logits(nchw)
        probs = softmax(logits)
        pairs = self.config.class_sensitivity and logits.shape[1] > 1
        seconds = runner_ups(logits, targets) if pairs else None
        rows: list[Row] = []
        for label, (_, runner) in self.runners.items():
            todo = [i for i, r in enumerate(ready) if not done(r.case.key, label)]
            if not todo:
                continue
            batch = np.stack([ready[i].sample for i in todo])
            try:
                heats = runner.heat(batch, targets[todo])
                others = None if seconds is None else runner.heat(batch, seconds[todo])
            except AeqError as exc:
                self.failures.append((f"method {label} on {ready[todo[0]].case.path}…", str(exc)))
                continue
            for k, (i, heat) in enumerate(zip(todo, heats, strict=True)):
                row = self.score(ready[i], int(targets[i]), float(probs[i, targets[i]]), heat,
                                 label)
                if seconds is not None and others is not None:
                    row["runner_up"] = int(seconds[i])
                    row["class_sensitivity"] = finite(class_sensitivity(heat, others[k]))
                rows.append(row)
        return rows


def stored(store: ResultStore, config: AuditConfig) -> Callable[[str, str], bool]:
    """The ``done`` test of :meth:`Worker.process`: a row is stored (with the class
    sensitivity when the configuration asks for it, so an older run's rows are redone)."""
    def done(key: str, label: str) -> bool:
        row = store.get(key, label)
        return row is not None and (not config.class_sensitivity or "runner_up" in row)
    return done


def run_audit(model: onnx.ModelProto, source_sha: str, cases: Sequence[Case],
              config: AuditConfig) -> AuditRun:
    """Run the audit locally; rows already in ``config.out`` are reused, not recomputed."""
    worker = Worker(model, source_sha, config)
    store = ResultStore(config.out)
    done = 0
    for chunk in chunks(cases, config.batch_size):
        for row in worker.process(chunk, stored(store, config)):
            store.put(row)
        done += len(chunk)
        if config.progress is not None:
            config.progress(done, len(cases))
    return finish(model, cases, config, worker, store)


def finish(model: onnx.ModelProto, cases: Sequence[Case], config: AuditConfig, worker: Worker,
           store: ResultStore) -> AuditRun:
    """Collect this audit's rows from the store and run the sanity and randomisation checks if
    asked. Rows, sanity and randomisation rows in canonical order, failures sorted and once
    each: the same run whatever order the cases completed in (engines, worker counts, resumed
    runs)."""
    run = AuditRun(failures=sorted(set(worker.failures)), methods=list(worker.runners))
    keys = {c.key for c in cases}
    run.rows = canonical(r for r in store.rows.values()
                         if r["case"] in keys and r["method"] in worker.runners)
    if config.sanity_cases > 0 and worker.runners:
        run.sanity = canonical(run_sanity(model, cases, worker.runners, worker.forward, config,
                                          run))
    if config.randomisation_cases > 0 and worker.runners:
        run.randomisation = canonical(run_randomisation(model, cases, worker.runners, config,
                                                        run))
    return run
