"""The localisation benchmark (issue 5): synthetic scenes with exact masks, the two scene CNNs of
``fixtures/scenes/`` and ``aeq audit`` with every method and metric.

Writes test scenes ``0..N-1`` of seed 2 (the models' test set, never trained on) with
``fixtures/scenes/generator.py``, a manifest (path, label = the true class, mask = the target
object's mask), audits ``vgg_scenes.onnx`` and ``resnet_scenes.onnx`` with AE (r = 1, 1.5, 2),
Gradient, Gradient x Input, Integrated Gradients, Grad-CAM, LRP-eps, LRP-z+ and RISE on pointing
game, energy pointing game, outside-inside ratio, mIoU, insertion/deletion AUC and the
cascading randomisation sanity check, and writes ``benchmarks/results/LOCALISATION.md``::

    .venv/bin/python benchmarks/bench_localisation.py [--n 300] [--sanity 12] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aeq_onnx.audit import GroundTruthSource, audit  # noqa: E402
from aeq_onnx.audit.report import markdown_table  # noqa: E402
from aeq_onnx.audit.scoring import CurveSettings  # noqa: E402
from aeq_onnx.render.presets import get_preset  # noqa: E402
from benchmarks.bench_compile import cpu  # noqa: E402
from fixtures.scenes.generator import write_dataset  # noqa: E402

SCENES = ROOT / "fixtures" / "scenes"
MODELS = {"vgg": SCENES / "vgg_scenes.onnx", "resnet": SCENES / "resnet_scenes.onnx"}
METHODS = ("ae:1,ae:1.5,ae,gradient,gradient-x-input,integrated-gradients,gradcam,lrp-epsilon,"
           "lrp-zplus,rise")
SEED = 2
DOC = ROOT / "benchmarks" / "results" / "LOCALISATION.md"


def write_manifest(data: Path, n: int) -> Path:
    """Scenes 0..n-1 of seed 2 and ``manifest.csv`` (path, label, mask) beside them."""
    entries = write_dataset(data, n, SEED)
    manifest = data / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "mask"])
        for e in entries:
            writer.writerow([f"images/{e['file']}", e["label"], f"masks/{e['file']}"])
    return manifest


def run_model(name: str, manifest: Path, out: Path, args: argparse.Namespace,
              model: Path | None = None, methods: str = METHODS) -> dict:
    """Audit one scene model (``model``: its file, default ``MODELS[name]``) with ``methods``;
    returns the report dict."""
    import json

    methods = methods.replace("rise", f"rise:masks={args.rise_masks}")
    result = audit(model or MODELS[name], GroundTruthSource(manifest=manifest), methods=methods,
                   out=out / name, preset=get_preset(str(SCENES / "preset.json")),
                   curves=CurveSettings(args.steps, ("blur",)), batch_size=32,
                   sanity_cases=args.sanity, threads=2,
                   command=f"bench_localisation {name}")
    if result.run.failures:
        print(f"{name}: {len(result.run.failures)} failure(s), first: {result.run.failures[0]}",
              file=sys.stderr)
    return dict(json.loads(result.report["json"].read_text()))


def document(tables: dict[str, str], args: argparse.Namespace, seconds: float) -> str:
    """``benchmarks/results/LOCALISATION.md``."""
    command = " ".join([".venv/bin/python benchmarks/bench_localisation.py", *args.argv])
    parts = ["# Localisation benchmark: synthetic scenes with exact masks", "",
             f"`{command}` on {datetime.date.today()}, {cpu()} "
             f"({os.cpu_count()} cores), {seconds / 60:.1f} min (less when earlier results in "
             f"the output folder were reused). Scenes 0..{args.n - 1} of "
             f"seed {SEED} (the models' test set), 64x64, target = the true class, ground truth "
             "= the target object's mask (distractors of other classes excluded); insertion/"
             f"deletion {args.steps} steps, blurred baseline; sanity check on the first "
             f"{args.sanity} scenes; RISE {args.rise_masks} masks. Models and seeds: "
             "`fixtures/scenes/MODELS.md`.", ""]
    for name, table in tables.items():
        parts += [f"## {name}_scenes.onnx", "", table, ""]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="scenes (default 300)")
    parser.add_argument("--sanity", type=int, default=12, help="sanity-check scenes")
    parser.add_argument("--steps", type=int, default=20, help="insertion/deletion steps")
    parser.add_argument("--rise-masks", type=int, default=4000)
    parser.add_argument("--models", default="vgg,resnet")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "localisation")
    parser.add_argument("--doc", type=Path, default=DOC, help="markdown to write ('' for none)")
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    start = time.perf_counter()
    manifest = write_manifest(args.out / "data", args.n)
    tables = {}
    for name in args.models.split(","):
        tables[name] = markdown_table(run_model(name, manifest, args.out, args))
        print(f"\n{name}_scenes.onnx\n{tables[name]}", flush=True)
    if str(args.doc):
        args.doc.write_text(document(tables, args, time.perf_counter() - start), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
