"""A classifier past protobuf's 2 GiB cap, end to end: compile, save, reload, run.

Builds (seeded) ``Conv 3→8 → ReLU → Flatten → Gemm 8192→CLASSES`` on 32×32 inputs with
``--classes`` outputs (70,000 by default: 2.3 GB of weights), saved with external data; then,
each step in its own fresh process so that its peak RSS (``VmHWM``) is its own:

1. ``compile_explainer(path)`` and ``save_explainer`` (external data past 1.8 GB);
2. ``Explainer(saved explainer)`` (the proto is too big to serialise: the session gets its
   large weights through ``add_external_initializers``) and one explained batch of 2, checked
   against numpy (logits) and for finite relevance.

Prints a Markdown table and writes ``benchmarks/results/LARGE.md``::

    .venv/bin/python benchmarks/bench_large.py [--classes 70000] [--workdir /tmp/aeq-large]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "LARGE.md"

_BUILD = """
import sys, numpy as np, onnx
from onnx import helper as h, TensorProto as T, numpy_helper as nh
classes, chunks, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
inits = [nh.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "conv_w")]
nodes = [h.make_node("Conv", ["input", "conv_w"], ["c"], pads=[1, 1, 1, 1]),
         h.make_node("Relu", ["c"], ["r"]), h.make_node("Flatten", ["r"], ["f"])]
for i, part in enumerate(np.array_split(np.arange(classes), chunks)):
    w = rng.standard_normal((len(part), 8192), dtype=np.float32) * 0.01
    inits.append(nh.from_array(w, f"fc{i}_w"))
    nodes.append(h.make_node("Gemm", ["f", f"fc{i}_w"], [f"part{i}"], transB=1))
nodes.append(h.make_node("Concat", [f"part{i}" for i in range(chunks)], ["logits"], axis=1))
graph = h.make_graph(nodes, "big", [h.make_tensor_value_info("input", T.FLOAT, ["n", 3, 32, 32])],
                     [h.make_tensor_value_info("logits", T.FLOAT, ["n", classes])], inits)
model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]); model.ir_version = 8
onnx.save_model(model, path, save_as_external_data=True, location="big.onnx.data")
"""

_STEP = """
import json, sys, time, numpy as np
step, src, dst = sys.argv[1:4]
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key): return int(line.split()[1]) / 1024
import aeq_onnx
from aeq_onnx.run.saving import save_explainer
base = rss("VmRSS"); t0 = time.perf_counter(); extra = {}
if step == "compile":
    files = save_explainer(aeq_onnx.compile_explainer(src), dst)
    extra["files"] = [str(f) for f in files]
else:
    import onnxruntime as ort
    e = aeq_onnx.Explainer(dst, device="cpu", threads=2)
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    out = e.explain(x)
    extra["seconds_explain"] = time.perf_counter() - t0
    extra["peak_explain"] = rss("VmHWM")  # before the reference session below
    extra["finite"] = bool(np.isfinite(out.relevance).all() and np.abs(out.relevance).max() > 0)
    plain = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    want = plain.run(None, {"input": x})[0]
    extra["logits_err"] = float(np.abs(out.logits - want).max() / np.abs(want).max())
extra.update(seconds=time.perf_counter() - t0, base=base, peak=rss("VmHWM"))
print(json.dumps(extra))
"""


def run(code: str, *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                          text=True, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=70_000)
    parser.add_argument("--chunks", type=int, default=4,
                        help="Gemms the classifier is split into (protobuf cannot hold one "
                        "tensor past 2 GiB)")
    parser.add_argument("--workdir", default="/tmp/aeq-large")
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src, dst = work / "big.onnx", work / "explainer.onnx"
    run(_BUILD, str(args.classes), str(args.chunks), str(src))
    source_mb = sum(f.stat().st_size for f in work.glob("big.onnx*")) / 1e6
    compiled = run(_STEP, "compile", str(src), str(dst))
    explained = run(_STEP, "explain", str(src), str(dst))
    weights = sum(f.stat().st_size for f in work.glob("explainer.onnx*")) / 1e6
    text = large_report(args.classes, source_mb, weights, compiled, explained)
    print(text)
    OUT.write_text(text, encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if explained["finite"] and float(explained["logits_err"]) < 1e-5 else 1  # type: ignore[arg-type]


def large_report(classes: int, source_mb: float, explainer_mb: float, compiled: dict[str, Any],
           explained: dict[str, Any]) -> str:
    """LARGE.md: what was run, where, and the table."""
    c_peak = compiled["peak"] - compiled["base"]
    e_peak = explained["peak_explain"] - explained["base"]
    return (
        "# A classifier past 2 GiB\n\n"
        f"`.venv/bin/python benchmarks/bench_large.py --classes {classes}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {report.machine()}; "
        f"{report.versions()}. Model: Conv 3→8, ReLU, Flatten, Gemm 8192→"
        f"{classes} in 4 chunks (seeded), {source_mb:.0f} MB saved with external data.\n\n"
        "| step | seconds | peak RSS above the import baseline (MB) | × source size |\n"
        "|---|---:|---:|---:|\n"
        f"| compile + save ({explainer_mb:.0f} MB explainer, external data) "
        f"| {compiled['seconds']:.1f} | {c_peak:.0f} | {c_peak / source_mb:.1f} |\n"
        f"| Explainer(saved file) + explain batch 2 | {explained['seconds_explain']:.1f} "
        f"| {e_peak:.0f} | {e_peak / source_mb:.1f} |\n\n"
        f"Logits vs onnxruntime on the source model: max diff {explained['logits_err']:.1e} of "
        f"max; relevance finite and non-zero: {explained['finite']}.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
