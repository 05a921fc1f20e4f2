"""Results of one benchmark run and their Markdown report (tables, targets, machine)."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

TITLES = {"vgg16": "VGG-16", "resnet50": "ResNet-50", "tiny": "tiny ResNet (smoke)"}
RISE_FULL_MASKS = 4000
# Issue targets. Ratios are explainer/forward latency, speed-ups other/explainer latency.
RATIO_TARGET = 7.0
TORCH_AE_SPEEDUP_TARGET = 4.0
ZENNIT_SPEEDUP_TARGET = 1.5
THROUGHPUT_TARGET = 1.2
RSS_TARGET = 3.0
COMPILE_TARGET_S = 10.0
AGREEMENT_TARGET = 1e-3
OPTION_GAIN = 0.05  # a session-option variant "clearly helps" when > 5 % faster than runtime

METHODS = {
    "ort_forward": "onnxruntime forward",
    "explainer": "AE explainer (aeq_onnx on onnxruntime)",
    "torch_forward": "PyTorch forward (eager)",
    "torch_ae": "AE by PyTorch autograd (benchmarks/torch_ae.py)",
    "zennit": "Zennit EpsilonPlusFlat (Gradient + canonizer)",
    "gradcam": "Captum LayerGradCam (split layer)",
    "ig": "Captum IntegratedGradients (32 steps, internal batch 32)",
    "rise": "RISE on onnxruntime, {masks} masks (measured)",
    "rise_full": "RISE on onnxruntime, 4000 masks (EXTRAPOLATED from the measured rate)",
}
METHOD_COLUMNS = ("model", "method", "batch", "median (ms)", "runs", "× ORT forward",
                  "× explainer time", "peak RSS (MiB)", "relevance vs explainer")
BATCH_COLUMNS = ("model", "batch", "forward (ms)", "explainer (ms)", "explainer / forward",
                 "explainer img/s", "forward peak RSS (MiB)", "explainer peak RSS (MiB)",
                 "RSS explainer / forward", "forward drift", "compile (s)")
GRAPH_COLUMNS = ("model", "batch", "forward (ms)", "explainer (ms)", "explainer / forward",
                 "explainer img/s", "explainer speed-up from graphs")
TARGET_COLUMNS = ("model", "target", "measured", "status")
OPTION_COLUMNS = ("model", "variant", "settings", "median (ms)", "runs", "vs runtime",
                  "peak RSS (MiB)", "fastest")


@dataclass
class BatchRow:
    """onnxruntime forward vs explainer at one batch size."""

    batch: int
    forward_ms: float
    explainer_ms: float
    forward_rss: float
    explainer_rss: float
    drift: float
    forward_graph_ms: float | None = None  # CUDA graph replays (CUDA runs only)
    explainer_graph_ms: float | None = None


@dataclass
class MethodRow:
    """One method timed at batch 1 (times in seconds)."""

    method: str
    ms: float
    runs: int
    rss: float | None = None
    agreement: float | None = None
    label: str = ""


@dataclass
class OptionRow:
    """The explainer under one session-option variant."""

    variant: str
    settings: str
    ms: float
    runs: int
    rss: float


@dataclass
class ModelResult:
    """Everything measured for one model."""

    name: str
    size: int
    compiled: dict[str, Any]
    batches: list[BatchRow] = field(default_factory=list)
    methods: list[MethodRow] = field(default_factory=list)
    options: list[OptionRow] = field(default_factory=list)

    def batch(self, b: int) -> BatchRow | None:
        return next((r for r in self.batches if r.batch == b), None)

    def method(self, name: str) -> MethodRow | None:
        return next((r for r in self.methods if r.method == name), None)


def median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


def relabel(columns: tuple[str, ...], memory: str) -> tuple[str, ...]:
    """``columns`` with "peak RSS" / "RSS" read as ``memory`` (e.g. "GPU memory" on CUDA)."""
    if memory == "peak RSS":
        return columns
    return tuple(c.replace("peak RSS", memory).replace("RSS", memory) for c in columns)


def table(columns: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """A Markdown table; the first two columns left-aligned, the rest right-aligned."""
    align = ["---" if i < 2 or c in ("method", "settings", "target", "variant") else "---:"
             for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def method_rows(r: ModelResult) -> list[list[str]]:
    """Rows of the per-method latency table (batch 1)."""
    b1 = r.batch(1)
    rows = []
    for m in r.methods:
        rows.append([TITLES.get(r.name, r.name), m.label or METHODS[m.method], "1",
                     fmt(m.ms), str(m.runs), fmt(m.ms / b1.forward_ms if b1 else None, ".2f", "x"),
                     fmt(m.ms / b1.explainer_ms if b1 else None, ".2f", "x"), fmt(m.rss, ".0f"),
                     fmt(m.agreement, ".1e")])
    return rows


def batch_rows(r: ModelResult) -> list[list[str]]:
    """Rows of the forward-vs-explainer table (one per batch size)."""
    return [[TITLES.get(r.name, r.name), str(b.batch), fmt(b.forward_ms), fmt(b.explainer_ms),
             fmt(b.explainer_ms / b.forward_ms, ".2f", "x"),
             fmt(1e3 * b.batch / b.explainer_ms, ".2f"), fmt(b.forward_rss, ".0f"),
             fmt(b.explainer_rss, ".0f"), fmt(b.explainer_rss / b.forward_rss, ".2f", "x"),
             fmt(b.drift, ".2f"), fmt(r.compiled["compile_s"])] for b in r.batches]


def graph_rows(r: ModelResult) -> list[list[str]]:
    """Rows of the CUDA-graph forward-vs-explainer table (CUDA runs only)."""
    return [[TITLES.get(r.name, r.name), str(b.batch), fmt(b.forward_graph_ms),
             fmt(b.explainer_graph_ms), fmt(b.explainer_graph_ms / b.forward_graph_ms, ".2f", "x"),
             fmt(1e3 * b.batch / b.explainer_graph_ms, ".2f"),
             fmt(b.explainer_ms / b.explainer_graph_ms, ".2f", "x")]
            for b in r.batches if b.forward_graph_ms and b.explainer_graph_ms]


def check(name: str, what: str, value: float, limit: float, at_most: bool, spec: str,
          ) -> list[str]:
    """One target row: MET when ``value`` is on the right side of ``limit``."""
    met = value <= limit if at_most else value >= limit
    return [TITLES.get(name, name), what, f"{value:{spec}}", "MET" if met else "MISSED"]


def speedup_targets(r: ModelResult) -> list[list[str]]:
    b1, rows = r.batch(1), []
    for method, limit, title in (("torch_ae", TORCH_AE_SPEEDUP_TARGET, "PyTorch autograd AE"),
                                 ("zennit", ZENNIT_SPEEDUP_TARGET, "Zennit EpsilonPlusFlat")):
        m = r.method(method)
        if b1 and m:
            rows.append(check(r.name, f"explainer ≥ {limit:g}x faster than {title} (batch 1)",
                              m.ms / b1.explainer_ms, limit, False, ".2f"))
    ae = r.method("torch_ae")
    if ae and ae.agreement is not None:
        rows.append(check(r.name, f"torch_ae relevance within {AGREEMENT_TARGET:g} of max|R| "
                          "(sanity)", ae.agreement, AGREEMENT_TARGET, True, ".1e"))
    return rows


def target_rows(r: ModelResult, memory: str = "peak RSS") -> list[list[str]]:
    """Every issue target that this run measured, computed from the numbers."""
    rows = [check(r.name, f"explainer / forward ≤ {RATIO_TARGET:g} (batch {b.batch})",
                  b.explainer_ms / b.forward_ms, RATIO_TARGET, True, ".2f") for b in r.batches]
    rows += [check(r.name, f"explainer / forward ≤ {RATIO_TARGET:g}, both as CUDA graphs "
                   f"(batch {b.batch})", b.explainer_graph_ms / b.forward_graph_ms, RATIO_TARGET,
                   True, ".2f") for b in r.batches if b.forward_graph_ms and b.explainer_graph_ms]
    rows += [check(r.name, f"explainer {memory} ≤ {RSS_TARGET:g}x forward (batch {b.batch})",
                   b.explainer_rss / b.forward_rss, RSS_TARGET, True, ".2f") for b in r.batches]
    b1, b8 = r.batch(1), r.batch(8)
    if b1 and b8:
        rows.append(check(r.name, f"explainer batch-8 throughput ≥ {THROUGHPUT_TARGET:g}x "
                          "batch-1", 8 * b1.explainer_ms / b8.explainer_ms, THROUGHPUT_TARGET,
                          False, ".2f"))
    rows += speedup_targets(r)
    rows.append(check(r.name, f"compile ≤ {COMPILE_TARGET_S:g} s", r.compiled["compile_s"],
                      COMPILE_TARGET_S, True, ".1f"))
    return rows


def option_rows(r: ModelResult) -> list[list[str]]:
    base = next((o.ms for o in r.options if o.variant == "runtime"), None)
    best = min((o.ms for o in r.options), default=None)
    return [[TITLES.get(r.name, r.name), o.variant, o.settings, fmt(o.ms), str(o.runs),
             fmt(o.ms / base - 1 if base else None, "+.1%"), fmt(o.rss, ".0f"),
             "fastest" if o.ms == best else ""] for o in r.options]


def option_finding(r: ModelResult, memory: str = "peak RSS") -> str:
    """One line: the fastest variant and whether it clearly (> 5 %) beats ``runtime`` (and,
    on CPU, twice the noise between ``runtime`` and ``tuned``, which have the same settings)."""
    if not r.options:
        return ""
    best = min(r.options, key=lambda o: o.ms)
    base = next((o for o in r.options if o.variant == "runtime"), None)
    if base is None:
        return f"- {TITLES.get(r.name, r.name)}: fastest variant `{best.variant}`."
    gain = 1 - best.ms / base.ms
    same = next((o for o in r.options if o.variant == "tuned"), None)  # runtime's settings
    noise = abs(same.ms / base.ms - 1) if same else 0.0
    bar = max(OPTION_GAIN, 2 * noise)
    why = (f"max(5 %, 2 × the {noise:.1%} noise between `runtime` and `tuned`, which have the "
           "same settings)" if same else "5 %")
    verdict = (f"**{gain:.1%} faster than `runtime`**" if gain > bar and best.variant != "runtime"
               else f"{gain:+.1%} vs `runtime`, not above {why}: no clear win")
    return (f"- {TITLES.get(r.name, r.name)}: fastest `{best.variant}` ({best.ms:.1f} ms, "
            f"{memory} {best.rss:.0f} MiB); {verdict}.")


# --------------------------------------------------------------------------- context

def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        if dist == "aeq_onnx":  # run from a checkout that is not installed
            import aeq_onnx

            return f"{aeq_onnx.__version__} (checkout, not installed)"
        return "not installed"


def versions() -> str:
    ort = "onnxruntime-gpu" if version("onnxruntime-gpu") != "not installed" else "onnxruntime"
    dists = [ort, "onnx", "torch", "torchvision", "zennit", "captum", "numpy", "aeq_onnx"]
    return f"Python {platform.python_version()}, " + ", ".join(f"{d} {version(d)}" for d in dists)


def machine(device: str = "cpu") -> str:
    """CPU, cores, RAM and OS; on ``device="cuda"`` the GPU from :func:`gpu` too."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = (f"{cpu_model()}, {os.cpu_count()} logical cores ({usable} usable), {memory_gib()} "
            f"RAM, {platform.system()} {platform.release()}")
    return text + (f"; GPU: {gpu()}" if device == "cuda" else "")


def gpu() -> str:
    """The GPU's name, memory and driver from ``nvidia-smi`` ("none found" without one)."""
    query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
             "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "none found (nvidia-smi failed)"
    name, memory, driver = (f.strip() for f in out.stdout.splitlines()[0].split(","))
    return f"{name}, {memory}, driver {driver}"


def now() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def header(title: str, script: str, argv: list[str] | None, device: str = "cpu") -> list[str]:
    """A results file's title and its Date, Command, Machine and Versions lines."""
    command = " ".join(["python", f"benchmarks/{script}", *(argv or sys.argv[1:])])
    return [f"# {title}", "", f"- Date: {now()}", f"- Command: `{command}`",
            f"- Machine: {machine(device)}", f"- Versions: {versions()}"]
