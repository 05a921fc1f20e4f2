"""Time to the first heatmap: ``aeq explain`` in a fresh process, from process start to the
heatmap PNG written, beside a plain onnxruntime forward in a fresh process.

For each model (torchvision VGG-16, ResNet-50, EfficientNet-V2-S, DenseNet-121; seeded random
weights, 224², torchscript export cached in ``fixtures/.cache``) and each round, in rotating
order, one fresh process each of:

- ``forward``: import onnxruntime + numpy, a session on the model, one run (batch 1);
- ``model``: ``aeq explain MODEL.onnx photo.jpg`` (compile included), isolated (the default)
  and ``--no-isolate``;
- ``explainer``: ``aeq explain EXPLAINER.onnx photo.jpg`` on an explainer built beforehand by
  ``aeq build`` (not timed), isolated and ``--no-isolate``;
- with ``--baseline ROOT``: the two isolated ``aeq`` commands again with the ``aeq_onnx`` of
  another checkout (e.g. the commit before a change), for a before/after in the same rounds.

Each process is ``benchmarks/first_result_probe.py`` (phase split: import, load/check (of
which the isolated child), compile, session, run, render, other). Medians over ``--repeats``
rounds; results printed and written to ``benchmarks/results/FIRST_RESULT.md``::

    .venv/bin/python benchmarks/bench_first_result.py [--models resnet50,...] [--repeats 3]
        [--device cpu|cuda] [--baseline ROOT] [--output PATH] [--raw RAW.json]
    .venv/bin/python benchmarks/bench_first_result.py --merge RAW1.json RAW2.json ...

(one run per group of models, each under ~15 minutes on 2 cores, then one report).

Targets (issue 18): the isolation's extra time to the first PNG at most 25 % of the
``--no-isolate`` time, for both commands; a prebuilt explainer's first heatmap within 3× the
forward's fresh-process time plus the explainer's own run time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import first_result_report as fr  # noqa: E402

PROBE = ROOT / "benchmarks" / "first_result_probe.py"
PHOTO = ROOT / "fixtures" / "images" / "astronaut.jpg"
MODELS = ("vgg16", "resnet50", "efficientnet_v2_s", "densenet121")
SIZE = 224

EXPORT = """
import sys
from fixtures import torchvision_models as tvm
tvm.MODELS.setdefault("efficientnet_v2_s", tvm.Arch("efficientnet_v2_s", size=224,
                                                    calibrate_bn=True))
if sys.argv[1] == "tiny":
    from benchmarks import models
    tvm.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    print(models.export("tiny", int(sys.argv[2]), tvm.CACHE_DIR))
else:
    print(tvm.export(sys.argv[1], "torchscript", 17, int(sys.argv[2])))
"""


def export(name: str, size: int) -> Path:
    """The cached torchscript export (a worker process: the driver stays free of torch).
    EfficientNet-V2-S (BatchNorm statistics calibrated, as for the other BN fixtures) is
    registered here, beside ``fixtures``' own models; ``tiny`` is ``benchmarks.models``'."""
    done = subprocess.run([sys.executable, "-c", EXPORT, name, str(size)], cwd=ROOT,
                          capture_output=True, text=True, check=True, env=_env(ROOT))
    return Path(done.stdout.strip().splitlines()[-1])


def _env(code_root: Path) -> dict[str, str]:
    """The environment of a measured process: ``code_root``'s aeq_onnx first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "AEQ_ISOLATE"}
    env["PYTHONPATH"] = os.pathsep.join([str(code_root), *filter(None, [env.get("PYTHONPATH")])])
    return env


def build_explainer(model: Path, out: Path, device: str) -> Path:
    """``aeq --no-isolate build`` (this checkout), not timed."""
    command = [sys.executable, "-m", "aeq_onnx.cli", "--no-isolate", "build", str(model),
               "-o", str(out)]
    subprocess.run(command, cwd=ROOT, env=_env(ROOT), check=True, capture_output=True)
    return out


def probe(args: list[str], code_root: Path, work: Path) -> dict[str, Any]:
    """One fresh process; its JSON report plus ``exit``: seconds from start to its exit."""
    out = work / "probe.json"
    out.unlink(missing_ok=True)
    t0 = time.time()
    done = subprocess.run([sys.executable, str(PROBE), str(out), repr(t0), *args], cwd=work,
                          env=_env(code_root), capture_output=True, text=True, check=False)
    exited = time.time() - t0
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"probe {args} failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["exit"] = exited
    return result


def variants(model: Path, explainer: Path, device: str, baseline: Path | None
             ) -> dict[str, tuple[list[str], Path]]:
    """Variant name -> (probe arguments, code root)."""
    out: dict[str, tuple[list[str], Path]] = {"forward": (["forward", str(model), device], ROOT)}
    for kind, source in (("model", model), ("explainer", explainer)):
        command = ["explain", str(source), str(PHOTO), "--device", device, "-o", "out"]
        out[kind] = (["aeq", *command], ROOT)
        out[f"{kind} --no-isolate"] = (["aeq", "--no-isolate", *command], ROOT)
        if baseline is not None:
            out[f"{kind} (baseline)"] = (["aeq", *command], baseline)
    return out


def run(args: argparse.Namespace) -> tuple[dict[str, dict[str, list[dict[str, Any]]]],
                                           fr.Load]:
    """Every model's variants, ``repeats`` interleaved rounds; samples by model and variant."""
    with tempfile.TemporaryDirectory(prefix="aeq-first-") as tmp:
        work = Path(tmp)
        plans = {}
        for name in args.models:
            model = export(name, args.size)
            explainer = build_explainer(model, work / f"{name}.explainer.onnx", args.device)
            plans[name] = variants(model, explainer, args.device, args.baseline)
        samples: dict[str, dict[str, list[dict[str, Any]]]] = {
            name: {v: [] for v in plan} for name, plan in plans.items()}
        load = fr.Load()
        for round_ in range(args.repeats):
            for name, plan in plans.items():
                order = list(plan)
                shift = round_ % len(order)
                for variant in order[shift:] + order[:shift]:
                    probe_args, code = plan[variant]
                    result = probe(probe_args, code, work)
                    samples[name][variant].append(result)
                    print(f"round {round_ + 1} {name:18s} {variant:26s} "
                          f"first PNG {result['first_png']:.2f} s", file=sys.stderr, flush=True)
        load.stop()
    return samples, load


def merge(paths: list[Path]) -> tuple[fr.Samples, fr.Load, list[str], dict[str, str]]:
    """Samples, load, commands and machine of several ``--raw`` files (one run per model
    group, all on one machine)."""
    samples: fr.Samples = {}
    load, busy, commands, machines = fr.Load(), 0.0, [], []
    load.wall = 0.0
    for path in paths:
        raw = json.loads(path.read_text())
        samples.update(raw["samples"])
        load.wall += raw["wall"]
        busy += raw["cores"] * raw["wall"]
        commands.append(f"{raw['date']}: `{raw['command']}`")
        machines.append(raw["context"])
    if any(m != machines[0] for m in machines):
        raise SystemExit(f"--merge: the runs come from different machines: {machines}")
    load.cores = busy / load.wall
    return samples, load, commands, machines[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma list (default {','.join(MODELS)}; tiny: smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="checkout root of another aeq_onnx to time the isolated commands of")
    parser.add_argument("--output", type=Path,
                        default=ROOT / "benchmarks" / "results" / "FIRST_RESULT.md")
    parser.add_argument("--raw", type=Path, default=None,
                        help="also write the samples as JSON (for --merge)")
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="measure nothing: one report from these --raw files")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report's header (e.g. what --baseline was)")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    argv = sys.argv[1:] if argv is None else argv
    measured_on = fr.context(args.device)
    if args.merge:
        samples, load, commands, measured_on = merge(args.merge)
        args.repeats = min(len(v) for runs in samples.values() for v in runs.values())
        notes = ["- Measured (merged here with `--merge`): " + "; ".join(commands)]
    else:
        samples, load = run(args)
        notes = []
        if args.raw:
            command = " ".join(["python benchmarks/bench_first_result.py", *argv])
            args.raw.write_text(json.dumps({"samples": samples, "wall": load.wall,
                                            "cores": load.cores, "command": command,
                                            "context": measured_on, "date": fr.report.now()}))
    notes += [f"- Note: {note}" for note in args.note]
    text = fr.render(samples, args, load, argv, notes, measured_on)
    print(text)
    args.output.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
