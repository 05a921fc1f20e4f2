"""Benchmark the AE explainer against the plain forward pass and other attribution methods, CPU.

For each model (torchvision VGG-16 / ResNet-50, seeded random weights, torchscript export,
224x224, 2 threads): compile time; onnxruntime forward vs explainer latency and peak RSS at
batch 1 and 8; on the same torch model at batch 1: AE by PyTorch autograd
(``benchmarks/torch_ae.py``, with its agreement with the explainer), Zennit EpsilonPlusFlat,
Captum LayerGradCam and IntegratedGradients; RISE through onnxruntime (ResNet-50); and the
explainer under several onnxruntime session-option variants. Every measurement runs in a fresh
subprocess (its ``ru_maxrss`` is its own peak). Prints a Markdown report and writes it to
``benchmarks/results/RESULTS.md`` (``--output``) with the targets marked MET/MISSED.

``--device cuda`` runs the same table on the GPU (onnxruntime's CUDAExecutionProvider, torch on
``cuda``; memory is the GPU memory each worker process holds) with the explainer's CUDA calls
(IO binding, on-device, fp16) in place of the CPU session options, into
``benchmarks/results/RESULTS_CUDA.md``.

    python benchmarks/bench_explainer.py                    # everything (10-20 min on 2 cores)
    python benchmarks/bench_explainer.py --device cuda      # the same on the GPU
    python benchmarks/bench_explainer.py --rows core        # forward vs explainer only
    python benchmarks/bench_explainer.py --quick --output /tmp/r.md   # smoke run, < 60 s
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report, workers  # noqa: E402
from benchmarks.report import BatchRow, MethodRow, ModelResult, OptionRow  # noqa: E402

RESULTS = {"cpu": ROOT / "benchmarks" / "results" / "RESULTS.md",
           "cuda": ROOT / "benchmarks" / "results" / "RESULTS_CUDA.md"}
MODELS = ("vgg16", "resnet50", "tiny")
DEFAULT_MODELS = ["vgg16", "resnet50"]
EXPORTER = "torchscript"
ROW_GROUPS = ("core", "torch", "torch_ae", "zennit", "captum", "rise", "options")
QUICK_SIZE = {"resnet50": 64, "vgg16": 224, "tiny": 64}  # VGG's AdaptiveAvgPool2d(7): ~224


class Load:
    """CPU time the rest of the machine used while we ran (from /proc/stat)."""

    def __init__(self) -> None:
        self.start_busy, self.start_wall = self.busy_s(), time.monotonic()
        self.start_load = os.getloadavg()[0]

    @staticmethod
    def busy_s() -> float:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        except (OSError, ValueError):
            return float("nan")
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    def summary(self) -> tuple[float, float]:
        """(average cores used by other processes, wall seconds) since construction."""
        import resource

        wall = time.monotonic() - self.start_wall
        ours = sum(getattr(resource.getrusage(who), f) for who in
                   (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for f in ("ru_utime", "ru_stime"))
        return max(0.0, (self.busy_s() - self.start_busy - ours) / wall), wall


def side(name: str, args: argparse.Namespace) -> int:
    """The input side of ``name`` in this run."""
    return int(args.size or (QUICK_SIZE[name] if args.quick or name == "tiny" else 224))


def log(line: str) -> None:
    print(f"[bench] {line}", file=sys.stderr, flush=True)


def run_worker(*args: Any) -> dict[str, Any]:
    """Run this script as a worker subprocess and parse its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"worker {' '.join(map(str, args[:2]))} failed ({done.returncode})"
                           f":\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- measurements

def bench_batches(r: ModelResult, model: Path, explainer: Path, args: argparse.Namespace,
                  ) -> None:
    """onnxruntime forward vs explainer: latency (one process) and RSS (one process each)."""
    for batch in args.batches:
        common = [batch, r.size, args.threads]
        pair = run_worker("pair", model, explainer, *common, args.warmup, args.repeats,
                          args.pair_rounds)
        fwd = run_worker("session", model, "forward", *common)
        exp = run_worker("session", explainer, "explainer", *common)
        r.batches.append(BatchRow(batch, pair["forward_ms"], pair["explainer_ms"],
                                  fwd["rss_mib"], exp["rss_mib"], pair["forward_drift"],
                                  pair.get("forward_graph_ms"), pair.get("explainer_graph_ms")))
        log(f"{r.name} b{batch}: forward {pair['forward_ms']:.0f} ms, explainer "
            f"{pair['explainer_ms']:.0f} ms")
        if "graph_error" in pair:
            log(f"{r.name} b{batch}: CUDA graph pair FAILED: {pair['graph_error']}")
    b1 = r.batch(1)
    if b1:
        runs = args.pair_rounds * args.repeats
        r.methods += [MethodRow("ort_forward", b1.forward_ms, runs, b1.forward_rss),
                      MethodRow("explainer", b1.explainer_ms, runs, b1.explainer_rss)]


def torch_methods(groups: set[str]) -> list[str]:
    wanted = {"torch": ["torch_forward"], "torch_ae": ["torch_ae"], "zennit": ["zennit"],
              "captum": ["gradcam", "ig"]}
    return [m for g in ("torch", "torch_ae", "zennit", "captum") if g in groups
            for m in wanted[g]]


def bench_torch(r: ModelResult, explainer: Path, methods: list[str],
                args: argparse.Namespace) -> None:
    """The torch-side methods, one process each (or all in one with ``--torch-shared``)."""
    chunks = [methods] if args.torch_shared else [[m] for m in methods]
    for chunk in chunks:
        out = run_worker("torch", r.name, ",".join(chunk), r.size, args.threads, args.warmup,
                         args.repeats, explainer)
        for method, res in out.items():
            r.methods.append(MethodRow(method, report.median_ms(res["times"]),
                                       len(res["times"]), res["rss_mib"], res.get("agreement")))
            log(f"{r.name} {method}: {r.methods[-1].ms:.0f} ms")


def bench_rise(r: ModelResult, model: Path, args: argparse.Namespace) -> None:
    """RISE with ``--rise-masks`` masks, and the labelled extrapolation to 4000."""
    out = run_worker("rise", model, args.rise_masks, r.size, args.threads, args.warmup,
                     args.repeats)
    ms = report.median_ms(out["times"])
    label = report.METHODS["rise"].format(masks=args.rise_masks) + f" [{out['impl']}]"
    r.methods.append(MethodRow("rise", ms, len(out["times"]), out["rss_mib"], label=label))
    if args.rise_masks != report.RISE_FULL_MASKS:
        full = ms * report.RISE_FULL_MASKS / args.rise_masks
        r.methods.append(MethodRow("rise_full", full, 0, None,
                                   label=report.METHODS["rise_full"]))
    log(f"{r.name} rise ({args.rise_masks} masks, {out['impl']}): {ms:.0f} ms")


def bench_options(r: ModelResult, explainer: Path, args: argparse.Namespace) -> None:
    """The explainer (batch 1) under each session-option variant, rounds interleaved."""
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    rss: dict[str, float] = dict.fromkeys(args.variants, 0.0)
    failed: dict[str, str] = {}
    for _ in range(args.option_rounds):
        for variant in (v for v in args.variants if v not in failed):
            try:
                out = run_worker("options", explainer, variant, r.size, args.threads,
                                 args.warmup, args.repeats)
            except RuntimeError as err:  # a variant that cannot run here is reported, not fatal
                failed[variant] = str(err).strip().splitlines()[-1][:200]
                log(f"{r.name} option {variant} FAILED: {failed[variant]}")
                continue
            times[variant] += out["times"]
            rss[variant] = max(rss[variant], out["rss_mib"])
    for variant in args.variants:
        if variant in failed:
            r.options.append(OptionRow(variant, f"FAILED: {failed[variant]}", math.inf, 0, 0.0))
            continue
        r.options.append(OptionRow(variant, workers.variants(args.device)[variant],
                                   report.median_ms(times[variant]), len(times[variant]),
                                   rss[variant]))
    log(f"{r.name} options: " + ", ".join(f"{o.variant} {o.ms:.0f}" for o in r.options))


def bench_model(name: str, args: argparse.Namespace, workdir: Path) -> ModelResult:
    """Export (cached), compile in a subprocess, then every selected group of rows."""
    size = side(name, args)
    model = Path(run_worker("export", name, size, workdir)["path"])
    explainer = workdir / f"{name}-explainer.onnx"
    log(f"{name}: compiling {model.name}")
    r = ModelResult(name, size, run_worker("compile", model, explainer))
    log(f"{name}: compiled in {r.compiled['compile_s']:.1f} s")
    if "core" in args.groups:
        bench_batches(r, model, explainer, args)
    if methods := torch_methods(args.groups):
        bench_torch(r, explainer, methods, args)
    if "rise" in args.groups and name in args.rise_models:
        bench_rise(r, model, args)
    if "options" in args.groups:
        bench_options(r, explainer, args)
    explainer.unlink(missing_ok=True)
    return r


# --------------------------------------------------------------------------- report

OPTION_TITLE = {"cpu": "onnxruntime session options (explainer, batch 1)",
                "cuda": "Explainer calls on CUDA (batch 1)"}
CUDA_SETUP = ("CUDA: onnxruntime CUDAExecutionProvider (`aeq_onnx.run.runtime.make_session(device="
              "'cuda')`: TF32 off, cuDNN's default exhaustive algorithm search, absorbed by the "
              "warm-up); "
              "the forward/explainer pair runs through IO binding with its inputs and outputs "
              "on the GPU; torch on `cuda` with TF32 off (cuDNN and matmul), "
              "`torch.cuda.synchronize()` after every timed call; "
              "RISE's masks are made with numpy on the host")
CPU_MEMORY = ("Peak RSS: `ru_maxrss` of a fresh process that loads one session and runs it "
              "three times (the steady state), or builds one torch method and runs it "
              "(includes the Python + library baseline: torch rows carry ~300-400 MiB of "
              "torch).")
CUDA_MEMORY = ("GPU memory: what NVML says the fresh worker process holds on the GPU after "
               "loading one session and running it three times, or after building and running "
               "one torch method (the CUDA context, cuDNN/cuBLAS workspaces and the "
               "allocators' cached blocks included; onnxruntime's arena and torch's caching "
               "allocator keep their peak).")

def header(args: argparse.Namespace, command: str, load: Load) -> list[str]:
    others, wall = load.summary()
    busy = others > 0.25
    lines = ["# aeq_onnx explainer benchmark", ""]
    if args.quick:
        lines += ["> Quick smoke run (`--quick`: small input, 1 repeat, no warm-up, torch "
                  "methods in one process): not a measurement to quote.", ""]
    if busy:
        lines += [f"> Ran under load: other processes used {others:.2f} cores on average "
                  f"during the {wall / 60:.1f} min run (from /proc/stat minus this benchmark's "
                  "own CPU time). Absolute latencies are inflated and noisy; the ratios within "
                  "one run are what matter.", ""]
    sizes = ", ".join(f"{report.TITLES.get(m, m)} {side(m, args)}" for m in args.models)
    cuda = args.device == "cuda"
    return [
        *lines,
        f"- Date: {report.now()}; wall time {wall / 60:.1f} min; load from other processes "
        f"{others:.2f} cores on average (1-min load average at start {load.start_load:.2f})",
        f"- Command: `{command}`",
        f"- Machine: {report.machine(args.device)}",
        f"- Versions: {report.versions()}",
        f"- Setup: {CUDA_SETUP if cuda else 'CPU only'}, {args.threads} threads everywhere "
        f"(onnxruntime intra_op_num_threads={args.threads}, inter_op 1, ORT_ENABLE_ALL; "
        f"torch.set_num_threads({args.threads})); torchvision models with seeded random "
        f"weights (`weights=None`, seed 0), {EXPORTER} export (opset 17); input side: {sizes}; "
        "input: seeded standard-normal; explainer compiled with the defaults (ratio 2, "
        "add_rule residual), target = top-1 everywhere (Captum gets the top-1 index computed "
        "beforehand; the others pick it inside the timed call)",
        f"- Latency: median of {args.repeats} timed run(s) after {args.warmup} warm-up(s); "
        "AE by autograd, IntegratedGradients and RISE: at most 1 warm-up + 3 runs. The "
        f"forward/explainer pair is timed in one process, in {args.pair_rounds} interleaved "
        "rounds of a forward block and an explainer block (medians over all their runs; "
        "drift = last/first forward block). "
        + (CUDA_MEMORY if cuda else CPU_MEMORY) + " Compile: "
        "`compile_explainer(path)` wall time, file load included.",
        "- Relevance vs explainer: max |R_torch_ae − R_explainer| / max |R_explainer| on the "
        "benchmark input.",
        f"- Driver peak RSS {workers.peak_rss_mib():.0f} MiB: a floor under every worker's "
        "figure (Linux carries ru_maxrss across fork + exec), so the driver imports nothing "
        "heavy and exports in a worker.",
    ]


def render(results: list[ModelResult], args: argparse.Namespace, command: str,
           load: Load) -> str:
    """The Markdown report: context, the four tables and the session-option finding."""
    lines = header(args, command, load)
    memory = "GPU memory" if args.device == "cuda" else "peak RSS"

    def section(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> None:
        nonlocal lines
        if rows:
            lines += ["", f"## {title}", "", *report.table(columns, rows)]

    section("Attribution methods, batch 1", report.relabel(report.METHOD_COLUMNS, memory),
            [row for r in results for row in report.method_rows(r)])
    section("onnxruntime forward vs explainer", report.relabel(report.BATCH_COLUMNS, memory),
            [row for r in results for row in report.batch_rows(r)])
    section("onnxruntime forward vs explainer as CUDA graphs (`cuda_graph=True`)",
            report.GRAPH_COLUMNS, [row for r in results for row in report.graph_rows(r)])
    section("Targets (computed from the numbers above)", report.TARGET_COLUMNS,
            [row for r in results for row in report.target_rows(r, memory)])
    section(OPTION_TITLE[args.device], report.relabel(report.OPTION_COLUMNS, memory),
            [row for r in results for row in report.option_rows(r)])
    findings = [f for r in results if (f := report.option_finding(r, memory))]
    if findings:
        lines += ["", *findings]
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: the tiny ResNet at 64 px "
                   "(ResNet-50: 64 px), 1 repeat, no warm-up, 64 RISE masks, torch methods in "
                   "one process, variants runtime and tuned-no-spin, one round")
    p.add_argument("--models", type=lambda s: s.split(","), default=None,
                   help=f"comma list of {','.join(MODELS)} (default: vgg16,resnet50; quick: tiny)")
    p.add_argument("--rows", default="all",
                   help=f"all, or a comma list of {','.join(ROW_GROUPS)}")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--repeats", type=int, default=5, help="timed runs (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--pair-rounds", type=int, default=3,
                   help="interleaved forward/explainer rounds of the latency pair")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime and torch threads")
    p.add_argument("--size", type=int, default=None, help="input side (default 224)")
    p.add_argument("--rise-masks", type=int, default=500, help="RISE masks actually run")
    p.add_argument("--rise-models", type=lambda s: s.split(","), default=["resnet50"])
    p.add_argument("--option-rounds", type=int, default=2,
                   help="interleaved rounds over the session-option variants")
    p.add_argument("--variants", type=lambda s: s.split(","), default=None,
                   help=f"session-option variants (CPU): {','.join(workers.VARIANTS)}; "
                   f"explainer calls (CUDA): {','.join(workers.CUDA_VARIANTS)} (default: all)")
    p.add_argument("--device", choices=workers.DEVICES, default="cpu",
                   help="cpu (2 threads) or cuda (onnxruntime CUDAExecutionProvider, torch cuda)")
    p.add_argument("--torch-shared", action="store_true",
                   help="all torch methods of a model in one process (no per-method RSS)")
    p.add_argument("--output", type=Path, default=None,
                   help="markdown file to write (default benchmarks/results/RESULTS.md, with "
                   "--device cuda benchmarks/results/RESULTS_CUDA.md); rewritten after each "
                   "model")
    return finish(p, p.parse_args(argv))


def finish(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Validate the selections and apply ``--quick``."""
    args.models = args.models or (["tiny"] if args.quick else DEFAULT_MODELS)
    args.groups = set(ROW_GROUPS) if args.rows == "all" else set(args.rows.split(","))
    args.output = args.output or RESULTS[args.device]
    known = workers.variants(args.device)
    args.variants = args.variants or list(known)
    bad = [m for m in args.models if m not in MODELS] + sorted(args.groups - set(ROW_GROUPS))
    bad += [v for v in args.variants if v not in known]
    if bad:
        p.error(f"unknown model(s)/row group(s)/variant(s): {', '.join(bad)}")
    if args.quick:
        args.repeats, args.warmup, args.option_rounds = 1, 0, 1
        args.rise_masks, args.torch_shared = min(args.rise_masks, 64), True
        args.rise_models = [*args.rise_models, "tiny"]
        args.variants = [v for v in args.variants if v in ("runtime", "tuned-no-spin", "fp16")]
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return workers.worker_main(argv[1:])
    args = parse(argv)
    os.environ[workers.DEVICE_ENV] = args.device  # every worker inherits it
    command = " ".join([".venv/bin/python", "benchmarks/bench_explainer.py",
                        *map(shlex.quote, argv)])
    load = Load()
    results: list[ModelResult] = []
    text = ""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aeq-bench-") as tmp:
        for name in args.models:  # the report is rewritten after each model
            results.append(bench_model(name, args, Path(tmp)))
            text = render(results, args, command, load)
            args.output.write_text(text)
            log(f"wrote {args.output} ({len(results)} of {len(args.models)} models)")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
