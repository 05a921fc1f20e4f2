"""fp16 vs fp32 explainers: relevance error, agreement and CPU latency
(``aeq_onnx.compile.precision``).

For the committed scene CNNs (64 px, all five methods, real seeded scenes) and for torchvision
VGG-16 / ResNet-50 (224 px, seeded random weights and inputs, AE only): compile the explainer,
convert it with :func:`aeq_onnx.compile.precision.to_float16`, run both on onnxruntime's CPU
provider and compare, per input, ``max|R16 - R32| / max|R32|``, the Pearson correlation of the
maps, the explained class, the logits; plus batch-1 latency of both models.

``--device cuda`` runs both on onnxruntime's CUDAExecutionProvider instead (the measurement the
CPU figures estimate) and writes ``benchmarks/results/FP16_CUDA.md``.

Caveat (printed into the CPU report): onnxruntime's CPU provider runs fp16 graphs with fp16 kernels
for some ops and float32 kernels between inserted Casts for the others, so every intermediate
tensor is rounded to fp16 but much arithmetic runs in fp32: the errors are an estimate of what
CUDA gives, not a CUDA measurement, and the CPU latency says nothing about CUDA's.

    python benchmarks/fp16_error.py                       # scenes + VGG-16 + ResNet-50
    python benchmarks/fp16_error.py --models scenes --inputs 4 --output /tmp/fp16.md
    python benchmarks/fp16_error.py --device cuda        # on the GPU -> FP16_CUDA.md
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aeq_onnx.compile.compiler import compile_explainer  # noqa: E402
from aeq_onnx.compile.precision import to_float16  # noqa: E402
from aeq_onnx.run.runtime import Device, make_session  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks.models import export  # noqa: E402

OUTPUT = {"cpu": ROOT / "benchmarks" / "results" / "FP16.md",
          "cuda": ROOT / "benchmarks" / "results" / "FP16_CUDA.md"}
SCENE_METHODS = ("ae", "lrp-epsilon", "integrated-gradients", "gradcam", "gradient")
LARGE = ("vgg16", "resnet50")
HEAVY_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
THREADS = 2
TIMED_RUNS = 5
COLUMNS = ("model", "method", "inputs", "rel. err worst", "rel. err median", "Pearson min",
           "top-1 agree", "logits max err", "NaN/Inf", "heavy ops fp32/all", "fp32 ms",
           "fp16 ms")
CAVEAT = (
    "**Caveat: measured on onnxruntime's CPU provider, not on CUDA.** The CPU provider runs an "
    "fp16 graph with fp16 kernels for some ops and inserts Casts to float32 around the others, "
    "so every intermediate tensor is rounded to fp16 but much of the arithmetic runs in fp32. "
    "The errors are an estimate of the CUDA ones, not a CUDA measurement; CPU fp16 latency is "
    "not the point of the fp16 explainer (CUDA is) and is listed only for completeness.")
CUDA_NOTE = (
    "Measured on onnxruntime's CUDAExecutionProvider (cuDNN picks its own algorithms, so the "
    "fp32 reference is itself a GPU run). Latency: `session.run` with numpy in and out (host "
    "copies included), batch 1.")


@dataclass
class Row:
    """One (model, method) comparison over its inputs."""

    model: str
    method: str
    rel_err: list[float]
    pearson: list[float]
    agree: float
    logit_err: float
    nonfinite: int
    heavy32: str
    ms32: float
    ms16: float


def session(model: onnx.ModelProto, device: Device) -> ort.InferenceSession:
    """A session on ``device`` as aeq_onnx opens one (``runtime.make_session``), ``THREADS``
    threads."""
    return make_session(model, device, THREADS)


def explain(sess: ort.InferenceSession, x: np.ndarray) -> list[np.ndarray]:
    """logits, target_class, relevance, initial_relevance of one batch (predicted class)."""
    return list(sess.run(None, {"input": x, "target": np.full(len(x), -1, np.int64)}))


def latency_ms(sess: ort.InferenceSession, x: np.ndarray) -> float:
    """Median batch-1 latency over ``TIMED_RUNS`` runs after one warm-up."""
    explain(sess, x[:1])
    times = []
    for _ in range(TIMED_RUNS):
        start = time.perf_counter()
        explain(sess, x[:1])
        times.append(time.perf_counter() - start)
    return report.median_ms(times)


def heavy_fp32(model: onnx.ModelProto) -> str:
    """Heavy ops (conv, matmul) that the fp16 model still runs in float32, over all of them."""
    heavy = [n for n in model.graph.node if n.op_type in HEAVY_OPS]
    fp32 = [n for n in heavy if any(i.endswith("__fp32") or "__fp32_" in i for i in n.input)]
    return f"{len(fp32)}/{len(heavy)}"


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def per_input(out32: list[np.ndarray], out16: list[np.ndarray]) -> tuple[list[float],
                                                                          list[float]]:
    """Relative max-abs relevance error and Pearson correlation, one value per input."""
    errs, corrs = [], []
    for r32, r16 in zip(out32[2], out16[2], strict=True):
        scale = float(np.abs(r32).max()) or 1.0
        errs.append(float(np.abs(r16 - r32).max()) / scale)
        corrs.append(pearson(r32, r16))
    return errs, corrs


def compare(model: str, method: str, explainer: onnx.ModelProto, x: np.ndarray,
            device: Device) -> Row:
    """Convert, run both precisions on ``x`` (one input at a time) and time them."""
    half = to_float16(explainer)
    rows32, rows16 = session(explainer, device), session(half, device)
    outs = [(explain(rows32, x[i:i + 1]), explain(rows16, x[i:i + 1])) for i in range(len(x))]
    errs, corrs = [], []
    for a, b in outs:
        e, c = per_input(a, b)
        errs += e
        corrs += c
    agree = float(np.mean([a[1][0] == b[1][0] for a, b in outs]))
    logit_err = max(float(np.abs(a[0] - b[0]).max()) for a, b in outs)
    bad = sum(int((~np.isfinite(o)).sum()) for _, b in outs for o in b if o.dtype.kind == "f")
    return Row(model, method, errs, corrs, agree, logit_err, bad, heavy_fp32(half),
               latency_ms(rows32, x), latency_ms(rows16, x))


def scene_inputs(n: int) -> np.ndarray:
    """``n`` seeded scenes (seed 7, class-balanced), normalised as the scene CNNs expect."""
    from fixtures.scenes.generator import make_arrays
    from fixtures.scenes.train import preprocess

    return preprocess(make_arrays(n, seed=7)[0])


def scene_rows(n: int, device: Device) -> list[Row]:
    x = scene_inputs(n)
    rows = []
    for net in ("vgg", "resnet"):
        path = ROOT / "fixtures" / "scenes" / f"{net}_scenes.onnx"
        for method in SCENE_METHODS:
            explainer = compile_explainer(path, method=method)
            rows.append(compare(f"{net}_scenes", method, explainer, x, device))
            print(format_row(rows[-1]), flush=True)
    return rows


def large_row(name: str, n: int, device: Device) -> Row:
    """AE on a torchvision export at 224 px with ``n`` seeded N(0, 1) inputs."""
    with tempfile.TemporaryDirectory() as work:
        path = export(name, 224, Path(work))
        explainer = compile_explainer(path, method="ae")
    x = np.random.default_rng(0).standard_normal((n, 3, 224, 224)).astype(np.float32)
    row = compare(name, "ae", explainer, x, device)
    del explainer
    gc.collect()
    print(format_row(row), flush=True)
    return row


def format_row(r: Row) -> str:
    nan = any(np.isnan(r.pearson))
    cells = [r.model, r.method, str(len(r.rel_err)), f"{max(r.rel_err):.2e}",
             f"{statistics.median(r.rel_err):.2e}",
             "nan" if nan else f"{min(r.pearson):.5f}", f"{r.agree:.0%}",
             f"{r.logit_err:.2e}", str(r.nonfinite), r.heavy32, f"{r.ms32:.1f}", f"{r.ms16:.1f}"]
    return "| " + " | ".join(cells) + " |"


def markdown(rows: list[Row], command: str, seconds: float, device: str) -> str:
    date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    cuda = device == "cuda"
    lines = ["# fp16 explainers: error against fp32", "", CUDA_NOTE if cuda else CAVEAT, "",
             f"- Machine: {report.machine(device)}",
             f"- Versions: {report.versions()}",
             f"- Date: {date}", f"- Command: `{command}` ({seconds:.0f} s)",
             f"- onnxruntime {'CUDA' if cuda else 'CPU'} provider, {THREADS} intra-op threads, "
             "batch 1 per input; "
             f"latency: median of {TIMED_RUNS} runs after one warm-up.", "",
             *report.table(COLUMNS, []), *[format_row(r) for r in rows], "", *NOTES]
    return "\n".join(lines) + "\n"


NOTES = [
    "Columns: *rel. err* is `max|R16 - R32| / max|R32|` per input (worst and median over the "
    "inputs); *Pearson min* the lowest correlation of the fp16 and fp32 relevance maps; *top-1 "
    "agree* the share of inputs whose explained (predicted) class is the same; *logits max err* "
    "the largest absolute logit difference; *NaN/Inf* the non-finite values in any fp16 output; "
    "*heavy ops fp32/all* the Conv/ConvTranspose/Gemm/MatMul nodes the fp16 model still runs in "
    "float32 (`to_float16(keep_ratios_fp32=True)` keeps quotients `R / max(z, floor)` and what "
    "carries them in float32: in fp16 they exceed 65504, become Inf and `0 · Inf = NaN`).",
    "",
    "Scene CNNs: 64 px scenes from `fixtures/scenes/generator.py` (seed 7); VGG-16 / "
    "ResNet-50: seeded random torchvision weights (`benchmarks/models.py`), N(0, 1) inputs "
    "(seed 0), 224 px.",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["scenes", *LARGE],
                        choices=["scenes", *LARGE])
    parser.add_argument("--inputs", type=int, default=8, help="scene inputs (large: half)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--output", type=Path, default=None,
                        help="default benchmarks/results/FP16.md "
                        "(cuda: benchmarks/results/FP16_CUDA.md)")
    args = parser.parse_args(argv)
    args.output = args.output or OUTPUT[args.device]
    start = time.monotonic()
    print("\n".join(report.table(COLUMNS, [])), flush=True)
    rows = scene_rows(args.inputs, args.device) if "scenes" in args.models else []
    rows += [large_row(name, max(1, args.inputs // 2), args.device) for name in LARGE
             if name in args.models]
    command = "python " + " ".join(["benchmarks/fp16_error.py", *(argv or sys.argv[1:])])
    args.output.write_text(markdown(rows, command, time.monotonic() - start, args.device))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
