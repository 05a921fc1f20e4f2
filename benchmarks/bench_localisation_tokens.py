"""The localisation benchmark on the two trained token models (issue 21, ae-tokens T4).

``vit_scenes.onnx`` and ``convnext_scenes.onnx`` (``fixtures/scenes/MODELS.md``) on the same
scenes, metrics and settings as :mod:`benchmarks.bench_localisation`: every method, plus AE
under every token-model choice of T4 -- per-token linear rule (``token_linear``: conservative
/ equilibrium) x initial map (``initial_map``: elementwise / channel-mean) x Add of two tensors
(``token_add_rule``: z / share / residual), twelve combinations, each named in full -- and
writes ``benchmarks/results/LOCALISATION_TOKENS.md`` (the full tables and the T4 grid sorted by
energy pointing)::

    .venv/bin/python benchmarks/bench_localisation_tokens.py [--n 300] [--models vit,convnext]

Audits resume from ``--out``: run one model at a time (each within the machine's time limit),
then all of them to write the file from the stored results. A stored explainer is reused when
it was compiled from the same model, whatever the library version: use a fresh ``--out`` after
a rule change.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aeq_onnx.audit.report import markdown_table  # noqa: E402
from aeq_onnx.methods.ae import AE  # noqa: E402
from benchmarks.bench_compile import cpu  # noqa: E402
from benchmarks.bench_localisation import (  # noqa: E402
    METHODS,
    SCENES,
    SEED,
    run_model,
    write_manifest,
)

MODELS = {"vit": SCENES / "vit_scenes.onnx", "convnext": SCENES / "convnext_scenes.onnx"}
DOC = ROOT / "benchmarks" / "results" / "LOCALISATION_TOKENS.md"
#: The T4 choices: (parameter of AE, its values).
GRID: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("token_linear", ("conservative", "equilibrium")),
    ("initial_map", ("elementwise", "channel-mean")),
    ("token_add_rule", ("z", "share", "residual")),
)


def grid_specs() -> list[str]:
    """``ae:token_linear=...;initial_map=...;token_add_rule=...`` for every combination."""
    keys = [k for k, _ in GRID]
    return ["ae:" + ";".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
            for values in itertools.product(*(v for _, v in GRID))]


def grid_label(spec: str) -> str:
    """The audit's label of a grid spec (options sorted, ``,``-separated)."""
    options = sorted(spec.split(":", 1)[1].split(";"))
    return "ae:" + ",".join(options)


def methods() -> str:
    """Every method of the CNN benchmark (AE at r = 1, 1.5 and 2 with the token defaults)
    and the twelve T4 combinations."""
    return ",".join([METHODS, *grid_specs()])


def defaults() -> dict[str, str]:
    """AE's token-model defaults as the library declares them (``auto`` initial map =
    elementwise on token models)."""
    found = {k: str(getattr(AE, k).default) for k, _ in GRID}
    if found["initial_map"] == "auto":
        found["initial_map"] = "elementwise"
    return found


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "–" if value is None else f"{value:.3f}"


def grid_table(report: dict[str, Any]) -> str:
    """The T4 grid, one row per combination, best energy pointing first; the library's default
    combination marked."""
    chosen = defaults()
    rows = []
    for spec in grid_specs():
        label = grid_label(spec)
        if label not in report["table"]:
            continue
        options = dict(o.split("=") for o in spec.split(":", 1)[1].split(";"))
        rows.append((options, report["table"][label]))
    rows.sort(key=lambda r: -(r[1].get("energy") or -1.0))
    lines = ["| linear rule | initial map | Add rule | energy pointing ↑ | insertion (blur) ↑ "
             "| deletion (blur) ↓ | pointing ↑ | mIoU ↑ |", "|---|---|---|---|---|---|---|---|"]
    for options, row in rows:
        mark = " (default)" if options == chosen else ""
        lines.append(f"| {options['token_linear']}{mark} | {options['initial_map']} "
                     f"| {options['token_add_rule']} | {_cell(row, 'energy')} "
                     f"| {_cell(row, 'insertion_blur')} | {_cell(row, 'deletion_blur')} "
                     f"| {_cell(row, 'pointing')} | {_cell(row, 'iou')} |")
    return "\n".join(lines)


def failures(report: dict[str, Any]) -> list[str]:
    """One line per distinct failure (method that cannot run on the model ...)."""
    seen: dict[str, int] = {}
    for f in report.get("failures", []):
        text = f"{f['item']}: {f['error']}"
        seen[text] = seen.get(text, 0) + 1
    return [f"- {t}" + (f" ({n}×)" if n > 1 else "") for t, n in seen.items()]


def sanity(cases: int) -> str:
    """How the document states the sanity-check setting."""
    return (f"sanity check on the first {cases} scenes" if cases
            else "no sanity check (`--sanity 0`)")


def document(reports: dict[str, dict[str, Any]], args: argparse.Namespace,
             seconds: float) -> str:
    """``benchmarks/results/LOCALISATION_TOKENS.md``."""
    command = " ".join([".venv/bin/python benchmarks/bench_localisation_tokens.py", *args.argv])
    parts = ["# Localisation benchmark on the token models (ae-tokens T4)", "",
             f"`{command}` on {datetime.date.today()}, {cpu()} ({os.cpu_count()} cores, shared "
             f"with other jobs), {seconds / 60:.1f} min for this invocation (results stored in "
             f"the output folder by earlier invocations were reused). Scenes 0..{args.n - 1} of "
             f"seed {SEED} (the models' test set), 64x64, target = the true class, ground truth "
             f"= the target object's mask; insertion/deletion {args.steps} steps, blurred "
             f"baseline; {sanity(args.sanity)}; RISE {args.rise_masks} masks. Models: "
             "`fixtures/scenes/MODELS.md`. "
             f"The library's token-model defaults when this ran: {defaults()}; `ae`, `ae:r=1`, "
             "`ae:r=1.5` run with them.", ""]
    for name, report in reports.items():
        parts += [f"## {name}_scenes.onnx", "", "### T4 grid (AE's token-model choices)", "",
                  grid_table(report), "", "### Every method", "", markdown_table(report), ""]
        lines = failures(report)
        if lines:
            parts += ["Failures:", "", *lines, ""]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="scenes (default 300)")
    parser.add_argument("--sanity", type=int, default=12, help="sanity-check scenes")
    parser.add_argument("--steps", type=int, default=20, help="insertion/deletion steps")
    parser.add_argument("--rise-masks", type=int, default=4000)
    parser.add_argument("--models", default="vit,convnext")
    parser.add_argument("--methods", default=None, help="override the method list")
    parser.add_argument("--randomisation", type=int, default=0,
                        help="weight-randomisation scenes (default 0)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "localisation_tokens")
    parser.add_argument("--doc", type=Path, default=DOC, help="markdown to write ('' for none)")
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    start = time.perf_counter()
    manifest = write_manifest(args.out / "data", args.n)
    reports = {}
    for name in args.models.split(","):
        reports[name] = run_model(name, manifest, args.out, args, MODELS[name],
                                  args.methods or methods())
        print(f"\n{name}_scenes.onnx\n{grid_table(reports[name])}\n"
              f"{markdown_table(reports[name])}", flush=True)
    if str(args.doc):
        args.doc.write_text(document(reports, args, time.perf_counter() - start),
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
