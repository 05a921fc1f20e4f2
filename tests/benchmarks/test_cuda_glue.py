"""The CUDA side of the benchmark (``benchmarks/cuda_workers.py``), run on the CPU.

CI has no GPU, so this routes the CUDA code paths to the CPU (OrtValues and bound outputs asked
for on "cuda" land on the CPU; sessions use the CPU provider while reporting CUDA) and checks
what can be checked there: every explainer call variant gives the plain explainer's relevance,
the CUDA-graph pair and the synchronised torch call run, the NVML memory fallback, and the
report's CUDA tables. The GPU itself was measured in ``benchmarks/results/RESULTS_CUDA.md``."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.capi.onnxruntime_inference_collection import IOBinding

import aeq_onnx
from aeq_onnx.run import runtime
from benchmarks import cuda_workers, report, workers

SCENES = Path(__file__).resolve().parents[2] / "fixtures/scenes/resnet_scenes.onnx"


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    from_numpy = ort.OrtValue.ortvalue_from_numpy
    from_shape = ort.OrtValue.ortvalue_from_shape_and_type
    bind_output = IOBinding.bind_output
    monkeypatch.setattr(ort.OrtValue, "ortvalue_from_numpy",
                        staticmethod(lambda a, d="cpu", i=0: from_numpy(a, "cpu", 0)))
    monkeypatch.setattr(ort.OrtValue, "ortvalue_from_shape_and_type",
                        staticmethod(lambda s, t, d="cpu", i=0: from_shape(s, t, "cpu", 0)))
    monkeypatch.setattr(IOBinding, "bind_output",
                        lambda self, name, d="cpu", *a, **k: bind_output(self, name, "cpu"))
    monkeypatch.setattr(runtime, "cuda_usable", lambda: True)
    monkeypatch.setattr(runtime, "providers_for", lambda device, cuda_graph=False: [runtime.CPU])
    monkeypatch.setattr(runtime, "CUDA", runtime.CPU)
    monkeypatch.setenv(workers.DEVICE_ENV, "cuda")


@pytest.fixture(scope="module")
def explainer_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("glue") / "explainer.onnx"
    onnx.save(aeq_onnx.compile_explainer(SCENES), path)
    return str(path)


@pytest.mark.parametrize("variant", list(workers.CUDA_VARIANTS))
def test_every_call_variant_explains(fake_cuda: None, explainer_path: str, variant: str) -> None:
    want = aeq_onnx.Explainer(explainer_path, device="cpu").explain(
        workers.bench_input(1, 64)).relevance
    call = cuda_workers.cuda_call(explainer_path, variant, 64, 1)
    call()
    out = call()
    got = out["relevance"].numpy() if variant == "on-device" else out.relevance
    tolerance = 0.1 if variant == "fp16" else 0.0
    assert np.abs(got - want).max() <= tolerance * np.abs(want).max()


def test_graph_pair_and_bound_runner(fake_cuda: None, explainer_path: str) -> None:
    times = cuda_workers.graph_pair(str(SCENES), explainer_path, 2, 64, 1, 2, 2)
    assert set(times) == {"forward_graph_ms", "explainer_graph_ms"}
    assert all(t > 0 for t in times.values())
    sess = workers.session(explainer_path, 1)
    cuda_workers.bound_runner(sess, workers.feeds(2, 64, True))()


def test_synchronised_waits_for_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("sync"))
    assert cuda_workers.synchronised(lambda: calls.append("work") or 7)() == 7
    assert calls == ["work", "sync"]


@pytest.mark.parametrize("listed", [True, False], ids=["process-listed", "device-fallback"])
def test_gpu_memory_from_nvml(monkeypatch: pytest.MonkeyPatch, listed: bool) -> None:
    used = [1 << 30]
    proc = types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=300 << 20)
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda i: "gpu0",
        nvmlDeviceGetComputeRunningProcesses=lambda h: [proc] if listed else [],
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=used[0]))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    cuda_workers.note_gpu_start()
    used[0] += 500 << 20
    assert cuda_workers.gpu_mib() == (300.0 if listed else 500.0)


def test_report_cuda_tables() -> None:
    r = report.ModelResult("resnet50", 224, {"compile_s": 1.0})
    r.batches.append(report.BatchRow(1, 2.0, 20.0, 800, 1200, 1.0, 2.0, 13.0))
    r.options += [report.OptionRow("runtime", "default", 20.0, 5, 1200),
                  report.OptionRow("cuda-graph", "FAILED: no", float("inf"), 0, 0.0)]
    assert report.relabel(report.BATCH_COLUMNS, "GPU memory")[6] == "forward GPU memory (MiB)"
    assert report.graph_rows(r) == [["ResNet-50", "1", "2.0", "13.0", "6.50x", "76.92", "1.54x"]]
    graph_target = [row for row in report.target_rows(r, "GPU memory") if "CUDA graphs" in row[1]]
    assert graph_target == [["ResNet-50", "explainer / forward ≤ 7, both as CUDA graphs (batch 1)",
                             "6.50", "MET"]]
    assert "fastest `runtime`" in report.option_finding(r, "GPU memory")
