"""``aeq audit --engine ray``: the audit's cases on a Ray cluster, same rows as the local engine.

A Ray Data pipeline ``from_items -> map_batches -> iter_rows``, no scheduler of our own:

* one dataset row per *chunk* of ``config.batch_size`` consecutive cases, cut as the local
  engine cuts them: the same explainer batches, so the same rows, bit for bit;
* a fixed pool of ``workers`` actors (:class:`AuditActor`), each with one :class:`Worker` built
  once; GPU actors take ``num_gpus=gpus_per_worker`` and device ``cuda``, CPU actors one CPU
  slot and one onnxruntime thread (``config.threads`` overrides) so N actors fit N cores;
* actors write heatmaps to ``config.out`` (atomic, idempotent; a shared filesystem across
  machines) and return rows as JSON; the driver alone appends ``results.jsonl``, once per
  (case, method) even when a retried chunk re-emits rows;
* a dead actor is restarted and its task retried (bounded); streamed rows stay; a chunk that
  keeps failing is a failure of its cases, and so is an unreadable image. Then
  :func:`engine.finish`, ``out/results.parquet/`` and a throughput line on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from aeq_onnx.audit.cases import Case
from aeq_onnx.audit.config import AuditConfig, AuditRun, RayOptions
from aeq_onnx.audit.engine import Worker, finish
from aeq_onnx.audit.engine import stored as stored_test
from aeq_onnx.audit.store import ResultStore, Row, canonical
from aeq_onnx.errors import InputError

__all__ = ["AuditActor", "RayAuditRun", "Throughput", "run_audit_ray", "write_parquet"]

RETRIES = 3  # restarts per actor and retries per task before a chunk counts as lost
IDENTITY = ("case", "path", "class", "method", "target", "probability", "heatmap")


@dataclass(frozen=True)
class Throughput:
    """Images explained in this run, wall time of the pipeline and time actors spent working."""

    images: int
    workers: int
    wall_s: float
    busy_s: float

    @property
    def images_per_s(self) -> float:
        """Images per second of the pipeline (actor start-up included)."""
        return self.images / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def per_worker(self) -> float:
        """One actor's rate while busy (images per busy second)."""
        return self.images / self.busy_s if self.busy_s > 0 else 0.0

    def line(self) -> str:
        """The summary printed on stderr."""
        return (f"ray: {self.images} images in {self.wall_s:.1f} s on {self.workers} workers: "
                f"{self.images_per_s:.2f} images/s total, "
                f"{self.images_per_s / max(self.workers, 1):.2f} per worker "
                f"({self.per_worker:.2f} per busy worker-second)")


@dataclass
class RayAuditRun(AuditRun):
    """:class:`AuditRun` plus the run's throughput."""

    throughput: Throughput | None = None


class AuditActor:
    """The Ray Data callable class: one :class:`Worker` per actor, built once."""

    def __init__(self, model: bytes, source_sha: str, config: AuditConfig, cwd: str) -> None:
        """``cwd``: the driver's working directory (relative image and output paths)."""
        os.chdir(cwd)
        self.worker = Worker(onnx.load_model_from_string(model), source_sha, config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One output row per chunk: its index, rows and failures as JSON, busy seconds."""
        out: dict[str, list[Any]] = {"chunk": [], "rows": [], "failures": [], "busy": []}
        for index, blob, stored in zip(batch["chunk"], batch["cases"], batch["done"],
                                       strict=True):
            start, before = time.perf_counter(), len(self.worker.failures)
            rows = self.worker.process(pickle.loads(blob), _stored(json.loads(stored)))
            out["chunk"].append(int(index))
            out["rows"].append(json.dumps(rows))
            out["failures"].append(json.dumps(self.worker.failures[before:]))
            out["busy"].append(time.perf_counter() - start)
        return {k: np.array(v, dtype=object if k in ("rows", "failures") else None)
                for k, v in out.items()}


def _stored(pairs: list[list[str]]) -> Callable[[str, str], bool]:
    """The ``done`` test of :meth:`Worker.process` for the (case, method) pairs stored."""
    done = {(str(c), str(m)) for c, m in pairs}
    return lambda case, method: (case, method) in done


def _pending(cases: Sequence[Case], labels: Iterable[str], store: ResultStore,
             config: AuditConfig) -> list[tuple[Case, list[tuple[str, str]]]]:
    """Cases with a method not yet stored, and the (case, method) pairs already stored."""
    methods, todo, is_done = list(labels), [], stored_test(store, config)
    for case in cases:
        done = [(case.key, m) for m in methods if is_done(case.key, m)]
        if len(done) < len(methods):
            todo.append((case, done))
    return todo


def _items(todo: Sequence[tuple[Case, list[tuple[str, str]]]],
           size: int) -> list[dict[str, Any]]:
    """Dataset rows: one per chunk of ``size`` cases (the local engine's batches)."""
    parts = [todo[start:start + size] for start in range(0, len(todo), size)]
    return [{"chunk": i, "cases": pickle.dumps([c for c, _ in part]),
             "done": json.dumps([d for _, done in part for d in done])}
            for i, part in enumerate(parts)]


def _connect(options: RayOptions) -> bool:
    """Join ``options.address`` or start a local cluster; True when we started one."""
    import ray

    if not ray.is_initialized() and options.address:
        ray.init(address=options.address, log_to_driver=False)
    if ray.is_initialized():
        return False
    ray.init(num_cpus=max(options.workers, 1), include_dashboard=False, log_to_driver=False)
    return True


def _actor_config(config: AuditConfig, options: RayOptions) -> AuditConfig:
    """The config an actor runs: its device and threads, no progress callback, absolute out."""
    gpu = options.gpus_per_worker > 0
    threads = config.threads if (gpu or config.threads) else 1
    return replace(config, out=config.out.absolute(), progress=None,
                   device="cuda" if gpu else "cpu", threads=threads)


def _dataset(model: onnx.ModelProto, source_sha: str, items: list[dict[str, Any]],
             config: AuditConfig, options: RayOptions, actor: type[AuditActor]) -> Any:
    """``from_items -> map_batches`` on ``options.workers`` actors; restarts and retries bounded
    (Ray Data's default, forever, never ends on a chunk that always kills its actor)."""
    import ray.data

    gpu = options.gpus_per_worker > 0
    kwargs = {"model": model.SerializeToString(), "source_sha": source_sha,
              "config": _actor_config(config, options), "cwd": os.getcwd()}
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        return dataset.map_batches(
            actor, batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=max(options.workers, 1)),
            fn_constructor_kwargs=kwargs, num_cpus=None if gpu else 1.0,
            num_gpus=options.gpus_per_worker if gpu else None,
            max_restarts=RETRIES, max_task_retries=RETRIES)


@contextlib.contextmanager
def _data_context(errored_blocks: int) -> Iterator[None]:
    """Quiet progress output and tolerate ``errored_blocks`` failed chunks, then restore."""
    from ray.data import DataContext
    context = DataContext.get_current()
    saved = (context.enable_progress_bars, context.max_errored_blocks)
    context.enable_progress_bars, context.max_errored_blocks = False, errored_blocks
    try:
        yield
    finally:
        context.enable_progress_bars, context.max_errored_blocks = saved


class _Collector:
    """The driver's side: each (case, method) stored once, failures once, progress."""

    def __init__(self, store: ResultStore, worker: Worker, config: AuditConfig,
                 sizes: dict[int, int], total: int) -> None:
        self.store, self.worker, self.config, self.sizes, self.total = (
            store, worker, config, sizes, total)
        self.seen: set[tuple[str, ...]] = set()  # (case, method, step) stored in this run
        self.chunks: set[int] = set()  # chunks that came back
        self.done, self.busy = total - sum(sizes.values()), 0.0

    def take(self, out: dict[str, Any]) -> None:
        """One actor output row."""
        for row in json.loads(out["rows"]):
            key = ResultStore.key(row)
            if key not in self.seen:
                self.seen.add(key)
                self.store.put(row)
        for failure in json.loads(out["failures"]):
            if (item := (str(failure[0]), str(failure[1]))) not in self.worker.failures:
                self.worker.failures.append(item)
        if int(out["chunk"]) not in self.chunks:
            self.chunks.add(int(out["chunk"]))
            self.busy += float(out["busy"])
            self.done += self.sizes[int(out["chunk"])]
            if self.config.progress is not None:
                self.config.progress(self.done, self.total)


def _lost(items: list[dict[str, Any]], collector: _Collector, why: str) -> None:
    """Record the cases of chunks that never came back as failures."""
    lost = [c for item in items if item["chunk"] not in collector.chunks
            for c in pickle.loads(item["cases"])]
    collector.worker.failures.extend((str(c.path), f"lost on Ray: {why}") for c in lost)


def _stream(dataset: Any, items: list[dict[str, Any]], collector: _Collector) -> None:
    """Pull the actors' outputs as they come; a pipeline that gives up loses only its rest."""
    try:
        for out in dataset.iter_rows():
            collector.take(out)
    except Exception as exc:  # Ray wraps the actors' errors in its own types
        _lost(items, collector, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    else:
        _lost(items, collector, "its chunk never returned")


def _run_pipeline(model: onnx.ModelProto, source_sha: str, cases: Sequence[Case],
                  config: AuditConfig, options: RayOptions, worker: Worker,
                  store: ResultStore, actor: type[AuditActor]) -> Throughput:
    """Explain and score the pending cases on the cluster; returns the throughput."""
    todo = _pending(cases, worker.runners, store, config) if worker.runners else []
    items = _items(todo, config.batch_size)
    sizes = {item["chunk"]: len(pickle.loads(item["cases"])) for item in items}
    collector = _Collector(store, worker, config, sizes, len(cases))
    if not items:
        return Throughput(0, options.workers, 0.0, 0.0)
    import ray

    started, start = _connect(options), time.perf_counter()
    try:
        with _data_context(len(items)):
            _stream(_dataset(model, source_sha, items, config, options, actor), items,
                    collector)
    finally:
        if started:
            ray.shutdown()
    images = sum(sizes[c] for c in collector.chunks)
    return Throughput(images, options.workers, time.perf_counter() - start, collector.busy)


def run_audit_ray(model: onnx.ModelProto, source_sha: str, cases: Sequence[Case],
                  config: AuditConfig, options: RayOptions,
                  actor: type[AuditActor] = AuditActor) -> RayAuditRun:
    """Run the audit on Ray (see the module docstring); rows already in ``config.out`` are
    reused. ``actor`` is the callable class the pool runs (a subclass, for tests)."""
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise InputError("--engine ray needs Ray: pip install 'aeq_onnx[ray]'") from exc
    worker = Worker(model, source_sha, config)  # compiles (and caches) the explainers once
    store = ResultStore(config.out)
    throughput = _run_pipeline(model, source_sha, cases, config, options, worker, store, actor)
    run = finish(model, cases, config, worker, store)
    write_parquet(run.rows, config.out / "results.parquet")
    print(throughput.line(), file=sys.stderr)
    return RayAuditRun(**{f.name: getattr(run, f.name) for f in fields(run)},
                       throughput=throughput)


def parquet_records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """One flat record per (image, method), canonical order: identity, metrics, curves (JSON)."""
    metrics = sorted({k for r in rows for k in r if k not in IDENTITY and k != "curves"})
    records = []
    for row in canonical(rows):
        records.append({**{k: row.get(k) for k in IDENTITY},
                        **{k: None if row.get(k) is None else float(row[k]) for k in metrics},
                        "curves": json.dumps(row.get("curves", {}), sort_keys=True)})
    return records


def write_parquet(rows: Sequence[Row], folder: Path) -> Path:
    """``folder/`` as a Parquet dataset of ``rows`` (replaced as a whole, so no stale parts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(parquet_records(rows)), tmp / "part-00000.parquet")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder
