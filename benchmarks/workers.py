"""Benchmark workers: each runs in a fresh interpreter (``bench_explainer.py --worker KIND
ARGS...``) and prints one JSON line last, so its ``ru_maxrss`` is its own peak.

The device comes from the environment variable ``AEQ_BENCH_DEVICE`` (``cpu`` or ``cuda``),
which the driver sets from ``--device`` for every worker. On CUDA the sessions are
``aeq_onnx.run.runtime.make_session(device="cuda")``, the forward/explainer pair runs through IO
binding with its inputs and outputs on the GPU, torch runs on ``cuda`` with a synchronize after
each call, and the memory figure is the GPU memory the worker process holds (NVML)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

SEED = 0
DEVICE_ENV = "AEQ_BENCH_DEVICE"
DEVICES = ("cpu", "cuda")
# Session-option variants compared on the explainer (batch 1). "runtime" is
# aeq_onnx.run.runtime.make_session(path, "cpu", threads); "tuned" spells the same settings out
# explicitly (so the two rows also show the run-to-run noise).
VARIANTS: dict[str, str] = {
    "ort-default": "SessionOptions() untouched (ORT picks threads; ENABLE_ALL)",
    "runtime": "aeq_onnx.run.runtime.make_session(threads=2)",
    "tuned": "intra 2, inter 1, ENABLE_ALL, sequential, mem pattern off, arena on",
    "tuned-mempattern": "tuned, enable_mem_pattern on (onnxruntime's default)",
    "tuned-no-arena": "tuned, enable_cpu_mem_arena off",
    "tuned-no-spin": "tuned, session.intra_op.allow_spinning=0",
}
# On CUDA the variants are the ways to call the explainer (``runtime`` is the default call).
CUDA_VARIANTS: dict[str, str] = {
    "runtime": "Explainer(device='cuda').explain(numpy): IO binding (the CUDA default)",
    "no-binding": "Explainer(io_binding=False).explain(numpy): session.run, numpy in and out",
    "on-device": "Explainer.explain_on_device(OrtValue on the GPU): no host copies",
    "fp16": "Explainer(precision='fp16').explain(numpy), IO binding",
    "cuda-graph": "Explainer(cuda_graph=True).explain(numpy): one CUDA graph replay per call",
}


def device() -> Literal["cpu", "cuda"]:
    """The device this process measures on (``AEQ_BENCH_DEVICE``, default ``cpu``)."""
    name = os.environ.get(DEVICE_ENV, "cpu")
    if name not in DEVICES:
        raise ValueError(f"{DEVICE_ENV}={name!r}: expected one of {', '.join(DEVICES)}")
    return "cuda" if name == "cuda" else "cpu"


def variants(on: str) -> dict[str, str]:
    """The session-option (CPU) or call (CUDA) variants compared on device ``on``."""
    return CUDA_VARIANTS if on == "cuda" else VARIANTS


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_mib() -> float:
    """The memory figure of this worker: peak RSS on CPU, held GPU memory on CUDA."""
    if device() != "cuda":
        return peak_rss_mib()
    from benchmarks import cuda_workers

    return cuda_workers.gpu_mib()


def timed(fn: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    """Wall times (s) of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_input(batch: int, size: int) -> Any:
    """The seeded standard-normal NCHW input every method explains."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    return rng.standard_normal((batch, 3, size, size)).astype(np.float32)


def feeds(batch: int, size: int, explainer: bool) -> dict[str, Any]:
    import numpy as np

    x = bench_input(batch, size)
    return {"input": x, "target": np.full(batch, -1, np.int64)} if explainer else {"input": x}


def ort_options(variant: str, threads: int) -> Any:
    """SessionOptions for one entry of :data:`VARIANTS` (``runtime`` excepted)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if variant == "ort-default":
        return options
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = variant == "tuned-mempattern"
    options.enable_cpu_mem_arena = variant != "tuned-no-arena"
    if variant == "tuned-no-spin":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def session(model: str, threads: int, variant: str = "tuned") -> Any:
    """An onnxruntime session of ``model``: on CPU with the session options ``variant``, on
    CUDA as aeq_onnx opens one (``make_session(device="cuda")``)."""
    import onnxruntime as ort

    if device() == "cuda" or variant == "runtime":
        from aeq_onnx.run.runtime import make_session

        return make_session(model, device(), threads)
    return ort.InferenceSession(model, ort_options(variant, threads),
                                providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- ORT workers

def worker_export(name: str, size: str, workdir: str) -> dict[str, Any]:
    """Export (or find in the cache) the ONNX model, away from the driver's memory."""
    from benchmarks import models

    return {"path": str(models.export(name, int(size), Path(workdir)))}


def worker_compile(model: str, out: str) -> dict[str, Any]:
    """Compile ``model`` into ``out``; the time covers loading the file and compiling."""
    import onnx

    import aeq_onnx

    start = time.perf_counter()
    explainer = aeq_onnx.compile_explainer(model)
    compile_s = time.perf_counter() - start
    onnx.save(explainer, out)
    return {"compile_s": compile_s, "nodes": len(explainer.graph.node),
            "explainer_mb": os.path.getsize(out) / 1e6, "compile_rss_mib": peak_rss_mib()}


def worker_session(model: str, which: str, batch: str, size: str, threads: str,
                   ) -> dict[str, Any]:
    """Peak RSS of a fresh process that loads one session and runs it three times: the steady
    state a user sees (with a memory pattern, its block is allocated from the second run on)."""
    start = time.perf_counter()
    sess = session(model, int(threads))
    load_s = time.perf_counter() - start
    inputs = feeds(int(batch), int(size), which == "explainer")
    run = runner(sess, inputs)
    for _ in range(3):
        run()
    return {"load_s": load_s, "rss_mib": memory_mib()}


def runner(sess: Any, inputs: dict[str, Any]) -> Callable[[], Any]:
    """A zero-argument call of ``sess`` on ``inputs``; on CUDA through IO binding with the
    inputs copied to the GPU once and the outputs left there (the run synchronises)."""
    if device() != "cuda":
        return lambda: sess.run(None, inputs)
    from benchmarks import cuda_workers

    return cuda_workers.bound_runner(sess, inputs)


def worker_pair(model: str, explainer: str, batch: str, size: str, threads: str, warmup: str,
                repeats: str, rounds: str = "3") -> dict[str, Any]:
    """Median latencies of the forward and the explainer in one process, over ``rounds``
    interleaved rounds of a forward block and an explainer block (each warmed up): a slow
    spell of the machine falls on both, and one bad block moves neither median much. The
    drift is the last forward block's median over the first's."""
    b, s, w, r = int(batch), int(size), int(warmup), int(repeats)
    runs = [(session(model, int(threads)), feeds(b, s, False)),
            (session(explainer, int(threads)), feeds(b, s, True))]
    blocks: tuple[list[list[float]], list[list[float]]] = ([], [])
    for _ in range(int(rounds)):
        for k in (0, 1):
            blocks[k].append(timed(runner(*runs[k]), w, r))
    forward, explained = blocks
    result: dict[str, Any] = {
        "forward_ms": 1e3 * statistics.median(t for block in forward for t in block),
        "explainer_ms": 1e3 * statistics.median(t for block in explained for t in block),
        "forward_drift": statistics.median(forward[-1]) / statistics.median(forward[0])}
    if device() == "cuda":
        del runs
        try:
            from benchmarks import cuda_workers

            result.update(cuda_workers.graph_pair(model, explainer, b, s, int(threads), w, r))
        except Exception as err:  # the plain pair stands; the driver logs why graphs failed
            result["graph_error"] = f"{type(err).__name__}: {str(err)[:300]}"
    return result


def worker_options(explainer: str, variant: str, size: str, threads: str, warmup: str,
                   repeats: str) -> dict[str, Any]:
    """Explainer latency (batch 1) and memory under one session-option (CPU) or call (CUDA)
    variant."""
    if device() == "cuda":
        from benchmarks import cuda_workers

        fn = cuda_workers.cuda_call(explainer, variant, int(size), int(threads))
    else:
        fn = runner(session(explainer, int(threads), variant), feeds(1, int(size), True))
    times = timed(fn, int(warmup), int(repeats))
    return {"times": times, "rss_mib": memory_mib()}


def worker_rise(model: str, masks: str, size: str, threads: str, warmup: str, repeats: str,
                ) -> dict[str, Any]:
    """RISE on the plain ONNX model (batch 1 image, top-1 target, batches of 64 masks)."""
    import numpy as np

    from benchmarks import rise_bench

    sess = session(model, int(threads))
    x = bench_input(1, int(size))
    target = np.asarray([int(sess.run(None, {"input": x})[0].argmax())])
    predict = rise_bench.softmax_predict(lambda b: sess.run(None, {"input": b})[0])
    runs = heavy_runs("rise", int(warmup), int(repeats))
    times = timed(lambda: rise_bench.rise(predict, x, target, int(masks)), *runs)
    return {"times": times, "rss_mib": memory_mib(), "impl": rise_bench.implementation()}


# --------------------------------------------------------------------------- torch workers

def agreement(relevance: Any, explainer: str, size: int, threads: int) -> float:
    """max |R_torch - R_explainer| / max |R_explainer| on the benchmark input."""
    import numpy as np

    sess = session(explainer, threads)
    names = [o.name for o in sess.get_outputs()]
    ours = dict(zip(names, sess.run(None, feeds(1, size, True)), strict=True))["relevance"]
    return float(np.abs(relevance.detach().cpu().numpy() - ours).max() / np.abs(ours).max())


def worker_torch(name: str, methods: str, size: str, threads: str, warmup: str, repeats: str,
                 explainer: str) -> dict[str, Any]:
    """Time each torch method (comma list) at batch 1; for ``torch_ae`` also its agreement with
    the compiled explainer (``explainer`` path, ``-`` to skip). The RSS is per method only when
    one method runs in the process."""
    import torch

    from benchmarks import baselines, models

    torch.set_num_threads(int(threads))
    on = device()
    if on == "cuda":  # fp32 as onnxruntime runs it (aeq_onnx turns TF32 off there too)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.from_numpy(bench_input(1, int(size))).to(on)
    out: dict[str, Any] = {}
    for method in methods.split(","):
        fn = baselines.build(method, models.build(name).to(on), x)
        if on == "cuda":
            from benchmarks import cuda_workers

            fn = cuda_workers.synchronised(fn)
        runs = heavy_runs(method, int(warmup), int(repeats))
        out[method] = {"times": timed(fn, *runs), "warmup": runs[0]}
        if method == "torch_ae" and explainer != "-":
            mem = memory_mib()  # before the explainer session adds its own memory
            out[method]["agreement"] = agreement(fn(), explainer, int(size), int(threads))
            out[method]["rss_mib"] = mem
    single = "," not in methods
    for result in out.values():
        result["rss_mib"] = result.get("rss_mib", memory_mib()) if single else None
    return out


def heavy_runs(method: str, warmup: int, repeats: int) -> tuple[int, int]:
    """(warm-up, repeats): the slow methods (AE by autograd, IG, RISE) run at most 3 times."""
    if method in ("torch_ae", "ig", "rise"):
        return min(warmup, 1), max(1, min(repeats, 3))
    return warmup, repeats


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "export": worker_export, "compile": worker_compile, "session": worker_session,
    "pair": worker_pair, "options": worker_options, "rise": worker_rise, "torch": worker_torch,
}


def worker_main(argv: list[str]) -> int:
    kind, *rest = argv
    if device() == "cuda":
        from benchmarks import cuda_workers

        cuda_workers.note_gpu_start()
    print(json.dumps(WORKERS[kind](*rest)))
    return 0
