"""The localisation benchmark (issue 5): synthetic scenes with exact masks, the two scene CNNs of
``fixtures/scenes/`` and ``aeq audit`` with every method and metric.

Writes test scenes ``0..N-1`` of seed 2 (the models' test set, never trained on) with
``fixtures/scenes/generator.py``, a manifest (path, label = the true class, mask = the target
object's mask), audits ``vgg_scenes.onnx`` and ``resnet_scenes.onnx`` with AE (r = 1, 1.5, 2),
Gradient, Gradient x Input, Integrated Gradients, Grad-CAM, LRP-eps, LRP-z+ and RISE on pointing
game, energy pointing game, outside-inside ratio, mIoU, distractor energy (the distractors are
context rows of the manifest, ``explain`` = no), class sensitivity (top-2 Spearman),
insertion/deletion AUC, the cascading randomisation sanity check and the weight-randomisation
check (classifier first), and writes ``benchmarks/results/LOCALISATION.md``::

    .venv/bin/python benchmarks/bench_localisation.py [--n 300] [--sanity 12] \
        [--randomisation 12] [--methods ae,gradient,...] [--out DIR]

``--methods`` takes any audit method spec (``ae:r=1.5``, and whatever parameters the methods
declare), so new variants run through the same metrics.
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
from aeq_onnx.audit.report import markdown_randomisation, markdown_table  # noqa: E402
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


def distractor_masks(data: Path, name: str) -> list[tuple[int, str]]:
    """Per distractor of a scene its class and a mask PNG (from ``distractors/NAME``, which
    holds 1 + class on each distractor's pixels; a scene's distractors differ in class)."""
    import numpy as np
    from PIL import Image

    labels = np.asarray(Image.open(data / "distractors" / name))
    (data / "distractor_masks").mkdir(exist_ok=True)
    out = []
    for value in sorted(int(v) for v in np.unique(labels) if v):
        path = f"distractor_masks/{Path(name).stem}_{value - 1}.png"
        Image.fromarray((labels == value).astype(np.uint8) * 255, "L").save(data / path)
        out.append((value - 1, path))
    return out


def write_manifest(data: Path, n: int) -> Path:
    """Scenes 0..n-1 of seed 2 and ``manifest.csv`` (path, label, mask, explain) beside them:
    the target explained, each distractor a context row (``explain`` no)."""
    entries = write_dataset(data, n, SEED)
    manifest = data / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "mask", "explain"])
        for e in entries:
            image = f"images/{e['file']}"
            writer.writerow([image, e["label"], f"masks/{e['file']}", "yes"])
            for label, path in distractor_masks(data, str(e["file"])):
                writer.writerow([image, label, path, "no"])
    return manifest


def run_model(name: str, manifest: Path, out: Path, args: argparse.Namespace,
              model: Path | None = None, methods: str = METHODS) -> dict:
    """Audit one scene model (``model``: its file, default ``MODELS[name]``) with ``methods``;
    returns the report dict."""
    import json

    methods = ",".join(f"rise:masks={args.rise_masks}" if m == "rise" else m
                       for m in (methods or args.methods).split(","))
    result = audit(model or MODELS[name], GroundTruthSource(manifest=manifest), methods=methods,
                   out=out / name, preset=get_preset(str(SCENES / "preset.json")),
                   curves=CurveSettings(args.steps, ("blur",)), batch_size=32,
                   sanity_cases=args.sanity, threads=2,
                   command=f"bench_localisation {name}", class_sensitivity=True,
                   randomisation_cases=args.randomisation)
    if result.run.failures:
        print(f"{name}: {len(result.run.failures)} failure(s), first: {result.run.failures[0]}",
              file=sys.stderr)
    return dict(json.loads(result.report["json"].read_text()))


def document(tables: dict[str, str], args: argparse.Namespace, seconds: float,
             machine: str = "") -> str:
    """``benchmarks/results/LOCALISATION.md``."""
    command = " ".join([".venv/bin/python benchmarks/bench_localisation.py", *args.argv])
    parts = ["# Localisation benchmark: synthetic scenes with exact masks", "",
             f"`{command}` on {datetime.date.today()}, {machine or cpu()} "
             f"({os.cpu_count()} cores), {seconds / 60:.1f} min (less when earlier results in "
             f"the output folder were reused). Scenes 0..{args.n - 1} of "
             f"seed {SEED} (the models' test set), 64x64, target = the true class, ground truth "
             "= the target object's mask (distractors of other classes excluded); distractor "
             "energy = share of the positive relevance on the 1–2 distractor objects (their "
             "exact masks); top-2 Spearman = rank correlation of the maps of the target and "
             "the best-scoring other class (information: related classes may share evidence); "
             f"insertion/deletion {args.steps} steps, blurred baseline; sanity check (every "
             f"layer re-drawn, weights and biases) on the first {args.sanity} scenes; weight "
             "randomisation (weight tensors re-drawn from the output, classifier first, biases "
             f"kept, target kept) on the first {args.randomisation} scenes; RISE "
             f"{args.rise_masks} masks. Models and seeds: `fixtures/scenes/MODELS.md`.", ""]
    for name, table in tables.items():
        parts += [f"## {name}_scenes.onnx", "", table, ""]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="scenes (default 300)")
    parser.add_argument("--sanity", type=int, default=12, help="sanity-check scenes")
    parser.add_argument("--randomisation", type=int, default=12,
                        help="weight-randomisation scenes")
    parser.add_argument("--methods", default=METHODS, help="audit method specs (comma list; "
                        f"options after ':' separated by ';'; default {METHODS})")
    parser.add_argument("--machine", default="", help="machine description for the file")
    parser.add_argument("--steps", type=int, default=20, help="insertion/deletion steps")
    parser.add_argument("--rise-masks", type=int, default=4000)
    parser.add_argument("--models", default="vgg,resnet")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "localisation")
    parser.add_argument("--doc", default=str(DOC), help="markdown to write ('' for none)")
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    start = time.perf_counter()
    manifest = write_manifest(args.out / "data", args.n)
    tables = {}
    for name in args.models.split(","):
        report = run_model(name, manifest, args.out, args)
        tables[name] = "\n".join([markdown_table(report), *markdown_randomisation(report)
                                  ]).replace("## Weight randomisation", "### Weight randomisation")
        print(f"\n{name}_scenes.onnx\n{tables[name]}", flush=True)
    if args.doc:
        Path(args.doc).write_text(document(tables, args, time.perf_counter() - start, args.machine),
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
