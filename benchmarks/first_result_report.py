"""The Markdown report of ``bench_first_result.py``: time to the first heatmap, isolation's
cost, the phase split, the targets (MET/MISSED from the numbers) and the run's context."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.first_result_probe import PHASES

TITLES = {**report.TITLES, "efficientnet_v2_s": "EfficientNet-V2-S",
          "densenet121": "DenseNet-121", "tiny": "tiny ResNet (smoke)"}
#: Isolation may add at most this fraction of the --no-isolate time to the first PNG.
ISOLATION_TARGET = 0.25
#: A prebuilt explainer's first heatmap within this many forward fresh-process times, plus
#: the explainer's own run.
FORWARD_FACTOR = 3.0
PHASE_LABELS = {"import": "import", "load_check": "load/check", "isolated": "of which isolated",
                "compile": "compile", "session": "session", "run": "run", "render": "render",
                "other": "other"}
Samples = dict[str, dict[str, list[dict[str, Any]]]]


class Load:
    """CPU time other processes used while the benchmark ran (from /proc/stat)."""

    def __init__(self) -> None:
        self.busy0, self.wall0 = self.busy_s(), time.monotonic()
        self.cores, self.wall = float("nan"), float("nan")

    @staticmethod
    def busy_s() -> float:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        except (OSError, ValueError):
            return float("nan")
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        import resource

        self.wall = time.monotonic() - self.wall0
        ours = sum(getattr(resource.getrusage(who), f) for who in
                   (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for f in ("ru_utime", "ru_stime"))
        self.cores = max(0.0, (self.busy_s() - self.busy0 - ours) / self.wall)


def med(runs: list[dict[str, Any]], key: str) -> float:
    """Median of a top-level figure (``first_png``, ``exit``) or of a phase."""
    return statistics.median(r[key] if key in r else r["phases"][key] for r in runs)


def extra(iso: list[dict[str, Any]], plain: list[dict[str, Any]]) -> float:
    """Isolation's extra seconds to the first PNG: median of the per-round differences."""
    return statistics.median(a["first_png"] - b["first_png"] for a, b in zip(iso, plain,
                                                                             strict=True))


def table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(row) + " |" for row in rows)]


def summary_rows(samples: Samples) -> list[list[str]]:
    rows = []
    for name, runs in samples.items():
        row = [TITLES.get(name, name), f"{med(runs['forward'], 'first_png'):.2f}"]
        for kind in ("model", "explainer"):
            iso, plain = runs[kind], runs[f"{kind} --no-isolate"]
            gap = extra(iso, plain)
            row += [f"{med(iso, 'first_png'):.2f}", f"{med(plain, 'first_png'):.2f}",
                    f"{gap:+.2f} ({gap / med(plain, 'first_png'):+.0%})"]
        row.append(f"{med(runs['explainer'], 'run'):.2f}")
        rows.append(row)
    return rows


def largest_phase(runs: list[dict[str, Any]]) -> str:
    """The phase that takes most of the time to the first PNG, and its share."""
    phases = {p: med(runs, p) for p in PHASES}
    name = max(phases, key=lambda p: phases[p])
    share = phases[name] / med(runs, "first_png")
    return f"{PHASE_LABELS[name]} {phases[name]:.2f} s ({share:.0%})"


def target_rows(samples: Samples) -> list[list[str]]:
    rows = []
    for name, runs in samples.items():
        title = TITLES.get(name, name)
        for kind in ("model", "explainer"):
            plain = med(runs[f"{kind} --no-isolate"], "first_png")
            ratio = extra(runs[kind], runs[f"{kind} --no-isolate"]) / plain
            rows.append([title, f"`aeq explain {kind.upper()}.onnx`: isolation extra ≤ "
                         f"{ISOLATION_TARGET:.0%} of --no-isolate", f"{ratio:+.1%}",
                         "MET" if ratio <= ISOLATION_TARGET else "MISSED",
                         f"isolated child {med(runs[kind], 'isolated'):.2f} s"])
        bound = (FORWARD_FACTOR * med(runs["forward"], "first_png")
                 + med(runs["explainer"], "run"))
        got = med(runs["explainer"], "first_png")
        rows.append([title, f"explainer's first heatmap ≤ {FORWARD_FACTOR:g}× forward + its run "
                     f"({bound:.2f} s)", f"{got:.2f} s ({got / bound:.2f}× the bound)",
                     "MET" if got <= bound else "MISSED",
                     f"largest phase: {largest_phase(runs['explainer'])}; the forward's "
                     f"session {med(runs['forward'], 'session'):.2f} s"])
    return rows


def phase_rows(samples: Samples) -> list[list[str]]:
    rows = []
    for name, runs in samples.items():
        for variant, items in runs.items():
            cells = [f"{med(items, phase):.2f}" for phase in PHASE_LABELS]
            rows.append([TITLES.get(name, name), variant, *cells,
                         f"{med(items, 'first_png'):.2f}", f"{med(items, 'exit'):.2f}"])
    return rows


def baseline_rows(samples: Samples) -> list[list[str]]:
    rows = []
    for name, runs in samples.items():
        for kind in ("model", "explainer"):
            if f"{kind} (baseline)" not in runs:
                continue
            before, after = runs[f"{kind} (baseline)"], runs[kind]
            plain = runs[f"{kind} --no-isolate"]
            rows.append([TITLES.get(name, name), f"`aeq explain {kind.upper()}.onnx`",
                         f"{med(before, 'first_png'):.2f}", f"{med(after, 'first_png'):.2f}",
                         f"{med(plain, 'first_png'):.2f}",
                         f"{extra(before, plain):+.2f}", f"{extra(after, plain):+.2f}",
                         f"{med(before, 'isolated'):.2f}", f"{med(after, 'isolated'):.2f}"])
    return rows


def context(device: str) -> dict[str, str]:
    """The Machine and Versions lines of this run (kept in --raw files for --merge)."""
    return {"Machine": report.machine(device), "Versions": report.versions()}


def render(samples: Samples, args: argparse.Namespace, load: Load, argv: list[str],
           notes: list[str], measured_on: dict[str, str] | None = None) -> str:
    """The report; ``measured_on`` replaces this machine's Machine/Versions lines (--merge of
    runs made elsewhere)."""
    lines = report.header("Time to the first heatmap", "bench_first_result.py", argv,
                          args.device)
    for key, value in (measured_on or {}).items():
        lines = [f"- {key}: {value}" if line.startswith(f"- {key}: ") else line
                 for line in lines]
    lines += notes
    lines += [f"- Load: other processes used {load.cores:.2f} cores on average during the "
              f"{load.wall / 60:.1f} min run (from /proc/stat minus this benchmark's own "
              f"processes); {args.repeats} interleaved rounds (variant order rotated each "
              "round), medians; isolation extra = median of the per-round differences",
              f"- Input: `{Path('fixtures/images/astronaut.jpg')}`, batch 1, "
              f"models at {args.size}², device {args.device}", "",
              "## First heatmap (seconds from process start to the PNG written)", ""]
    lines += table(["model", "forward, fresh process", "MODEL.onnx isolated",
                    "MODEL.onnx --no-isolate", "isolation extra", "EXPLAINER.onnx isolated",
                    "EXPLAINER.onnx --no-isolate", "isolation extra", "explainer run"],
                   summary_rows(samples))
    lines += ["", "## Targets (computed from the numbers above)", ""]
    lines += table(["model", "target", "measured", "status", "where the time goes"],
                   target_rows(samples))
    if any(baseline_rows(samples)):
        where = f" {args.baseline}" if args.baseline else ""
        lines += ["", f"## Before / after (`--baseline{where}`, isolated, same rounds)", ""]
        lines += table(["model", "command", "baseline (s)", "this checkout (s)",
                        "--no-isolate (s)", "extra before", "extra after",
                        "isolated child before", "isolated child after"],
                       baseline_rows(samples))
    lines += ["", "## Phase split (median seconds; `first PNG` and `exit` from process start)",
              ""]
    lines += table(["model", "variant", *PHASE_LABELS.values(), "first PNG", "exit"],
                   phase_rows(samples))
    return "\n".join(lines)
