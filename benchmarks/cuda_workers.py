"""The benchmark workers' CUDA side (``bench_explainer.py --device cuda``): GPU memory from
NVML, IO binding with inputs and outputs on the GPU, the forward/explainer pair as CUDA graphs,
the explainer's CUDA calls, and torch calls followed by a synchronize."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks import workers


def gpu_mib() -> float:
    """GPU memory (MiB) this process holds, CUDA context included, from NVML; where NVML lists
    no process (some virtual machines), the device's used memory minus its value at start."""
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
        if proc.pid == os.getpid() and proc.usedGpuMemory:
            return float(proc.usedGpuMemory) / 2**20
    return (float(pynvml.nvmlDeviceGetMemoryInfo(handle).used) - _GPU_START[0]) / 2**20


_GPU_START = [0.0]  # the device's used GPU memory when this worker started (bytes)


def note_gpu_start() -> None:
    """Record the device's used memory before this worker touches CUDA (NVML fallback)."""
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    _GPU_START[0] = float(pynvml.nvmlDeviceGetMemoryInfo(handle).used)


def bound_runner(sess: Any, inputs: dict[str, Any]) -> Callable[[], Any]:
    """A zero-argument run of ``sess`` through IO binding, with ``inputs`` copied to the GPU
    once and the outputs left there (the run synchronises)."""
    import onnxruntime as ort

    binding = sess.io_binding()
    on_gpu = {k: ort.OrtValue.ortvalue_from_numpy(v, "cuda", 0) for k, v in inputs.items()}
    for name, value in on_gpu.items():
        binding.bind_ortvalue_input(name, value)
    for out in sess.get_outputs():
        binding.bind_output(out.name, "cuda")
    return lambda: (sess.run_with_iobinding(binding), on_gpu)


def graph_pair(model: str, explainer: str, batch: int, size: int, threads: int, warmup: int,
               repeats: int) -> dict[str, float]:
    """Forward and explainer latency as CUDA graph replays (``aeq_onnx.run.cuda_graph``; host
    copies of inputs and outputs included), same blocks as the plain pair."""
    from aeq_onnx.run.cuda_graph import GraphRunner
    from aeq_onnx.run.runtime import make_session

    runs = [(GraphRunner(make_session(path, "cuda", threads, cuda_graph=True)),
             workers.feeds(batch, size, path == explainer)) for path in (model, explainer)]
    calls = [lambda: runs[0][0].run(runs[0][1]), lambda: runs[1][0].run(runs[1][1])]
    blocks = [workers.timed(calls[k], warmup, repeats) for k in (0, 1, 0)]
    return {"forward_graph_ms": 1e3 * statistics.median(blocks[0] + blocks[2]),
            "explainer_graph_ms": 1e3 * statistics.median(blocks[1])}


#: Explainer keyword arguments of the :data:`workers.CUDA_VARIANTS` that need any.
CALL_OPTIONS: dict[str, dict[str, Any]] = {"no-binding": {"io_binding": False},
                                           "fp16": {"precision": "fp16"},
                                           "cuda-graph": {"cuda_graph": True}}


def cuda_call(explainer: str, variant: str, size: int, threads: int) -> Callable[[], Any]:
    """One :data:`CUDA_VARIANTS` call of the explainer at batch 1."""
    import onnxruntime as ort

    from aeq_onnx.run.runtime import Explainer

    exp = Explainer(explainer, device="cuda", threads=threads, **CALL_OPTIONS.get(variant, {}))
    x = workers.bench_input(1, size)
    if variant == "on-device":
        on_gpu = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        return lambda: exp.explain_on_device(on_gpu)
    return lambda: exp.explain(x)


def synchronised(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` followed by ``torch.cuda.synchronize()``, so its time covers the GPU's work."""
    import torch

    def run() -> Any:
        result = fn()
        torch.cuda.synchronize()
        return result
    return run
