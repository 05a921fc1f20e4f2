"""Where an explainer spends its time: onnxruntime's profiler, per op type and per provider.

For each model (torchvision VGG-16 / ResNet-50 as in ``bench_explainer.py``, or ``tiny``):
compile the AE explainer, run it ``--runs`` times at batch 1 after one warm-up with
onnxruntime's profiling on, and sum the node events of the timed runs by op type and by
execution provider (on CUDA, nodes onnxruntime left on the CPU show up as
``CPUExecutionProvider`` rows, with the copies between devices as ``MemcpyToHost`` /
``MemcpyFromHost``). Writes a Markdown table to ``--output`` (default
``benchmarks/results/PROFILE.md``, ``PROFILE_CUDA.md`` with ``--device cuda``). On the CPU it also
reports the peak of the live intermediate tensors in onnxruntime's execution order
(``benchmarks/liveness.py``) for the explainer and for the model's own forward pass.

    python benchmarks/profile_explainer.py --models resnet50
    python benchmarks/profile_explainer.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aeq_onnx.compile.compiler import compile_explainer  # noqa: E402
from aeq_onnx.run.runtime import Device, providers_for  # noqa: E402
from benchmarks import liveness, models, report, workers  # noqa: E402

OUTPUT = {"cpu": ROOT / "benchmarks" / "results" / "PROFILE.md",
          "cuda": ROOT / "benchmarks" / "results" / "PROFILE_CUDA.md"}
TOP = 12  # op types listed per model
CUDA_CAVEAT = (" On CUDA a node's time is what the host spent on it (kernel launches, and the "
               "copies and synchronisations it waits for), not the GPU's kernel time: the node "
               "counts per provider are exact, the times show launch overhead.")


def profile(path: Path, device: Device, size: int, runs: int, threads: int, work: Path,
            ) -> list[dict[str, Any]]:
    """The profiler's node events of ``runs`` explainer runs (batch 1) after one warm-up."""
    return liveness.profiled_runs(path, workers.feeds(1, size, explainer=True), runs, threads,
                                  work, providers_for(device))


def summary(name: str, nodes: list[dict[str, Any]], runs: int) -> list[list[str]]:
    """Rows: op type, provider, node count per run, ms per run, share of node time."""
    time: Counter[tuple[str, str]] = Counter()
    count: Counter[tuple[str, str]] = Counter()
    for e in nodes:
        args = e.get("args", {})
        key = (str(args.get("op_name", "?")), str(args.get("provider", "?")))
        time[key] += int(e["dur"])  # microseconds, an integer in onnxruntime's profile
        count[key] += 1
    total = sum(time.values()) or 1.0
    rows = [[report.TITLES.get(name, name), op, provider.replace("ExecutionProvider", ""),
             f"{count[(op, provider)] / runs:.0f}", f"{t / runs / 1e3:.2f}", f"{t / total:.1%}"]
            for (op, provider), t in time.most_common(TOP)]
    on_cpu = sum(t for (_, p), t in time.items() if p.startswith("CPU"))
    rows.append([report.TITLES.get(name, name), "all nodes", "", f"{len(nodes) / runs:.0f}",
                 f"{total / runs / 1e3:.2f}", f"CPU-provider share {on_cpu / total:.1%}"])
    return rows


def live_rows(name: str, paths: dict[str, Path], size: int, threads: int, work: Path,
              ) -> list[list[str]]:
    """Liveness peak (batch 1) of the forward model and of its explainer."""
    rows = []
    for label, path in paths.items():
        inputs = workers.feeds(1, size, explainer=label != "forward")
        (work / label).mkdir(parents=True)
        live = liveness.measure(path, inputs, work / label, threads)
        biggest = ", ".join(f"{op} {nbytes / 1e6:.1f}" for op, nbytes in live.top[:3])
        rows.append([report.TITLES.get(name, name), label, f"{live.peak_bytes / 1e6:.1f}",
                     f"{live.position} of {live.nodes}", biggest])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=lambda s: s.split(","), default=["resnet50", "vgg16"])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    output = args.output or OUTPUT[args.device]
    rows: list[list[str]] = []
    live: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="aeq-profile-") as tmp:
        for name in args.models:
            explainer = Path(tmp) / f"{name}-explainer.onnx"
            source = models.export(name, args.size, Path(tmp))
            explainer.write_bytes(compile_explainer(source).SerializeToString())
            nodes = profile(explainer, args.device, args.size, args.runs, args.threads,
                            Path(tmp))
            rows += summary(name, nodes, args.runs)
            if args.device == "cpu":
                live += live_rows(name, {"forward": source, "explainer": explainer},
                                  args.size, args.threads, Path(tmp) / f"{name}-live")
            print(f"[profile] {name}: {len(nodes)} node events", file=sys.stderr, flush=True)
    text = "\n".join([
        *report.header("Where the explainer's time goes (onnxruntime profiler)",
                       "profile_explainer.py", argv, args.device),
        f"- {args.device.upper()}, batch 1, {args.size} px, {args.threads} threads; node "
        f"kernel times summed over {args.runs} runs after one warm-up, per run; the top "
        f"{TOP} (op type, provider) pairs per model, then all nodes."
        + (CUDA_CAVEAT if args.device == "cuda" else ""), "",
        *report.table(("model", "op type", "provider", "nodes / run", "ms / run", "share"),
                      rows), "", *live_section(live)])
    output.write_text(text)
    print(text)
    return 0


def live_section(rows: list[list[str]]) -> list[str]:
    """The liveness table (CPU runs only), with how to read it."""
    if not rows:
        return []
    return ["## Peak of the live intermediate tensors (batch 1, onnxruntime's execution order)",
            "", "Bytes of node outputs alive at once (weights and inputs not counted; "
            "allocator slack and in-place reuse not modelled), where in the run the peak "
            "falls, and the op types holding most of it (MB).", "",
            *report.table(("model", "graph", "peak MB", "at node", "biggest (MB)"), rows), ""]


if __name__ == "__main__":
    sys.exit(main())
