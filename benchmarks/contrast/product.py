"""The contrast variants as the product computes them (``contrast=`` of the compiled explainer),
on EfficientNet-Lite0 with its ImageNet weights (as ``make demo``) and the bundled photos::

    .venv/bin/python -m benchmarks.contrast.product maps   # docs/images/contrast-*.png
    .venv/bin/python -m benchmarks.contrast.product cost   # benchmarks/results/CONTRAST-COST.md

``maps``: for the cat photo (Egyptian cat / tabby) and the rocket photo (missile /
projectile): the photo, AE's maps of the top-2 classes, and the two ``versus`` maps (top-1 vs
top-2, top-2 vs top-1). ``cost``: the explainer's run time per variant relative to ``logit``
(interleaved rounds, median), its node count and file size.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

import aeq_onnx
from aeq_onnx.methods.contrast import CONTRASTS
from aeq_onnx.render.heatmaps import overlay
from aeq_onnx.render.photos import load_image
from aeq_onnx.render.presets import get_preset, input_spec, preprocess

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "fixtures" / "images"
PAIRS = (("chelsea.jpg", "contrast-cat.png"), ("rocket.jpg", "contrast-rocket.png"))
TILE, HEAD = 150, 34


def lite0() -> Path:
    from fixtures.efficientnet_lite0 import export

    return export()


def photo(path: Path) -> tuple[np.ndarray, Any]:
    """The photo as the ``imagenet`` preset feeds it ([1, 3, 224, 224]) and its crop (PIL)."""
    preset = get_preset("imagenet")
    x, crop = preprocess(load_image(path), preset, input_spec([1, 3, 224, 224], preset))
    return x[None], crop


def _names() -> list[str]:
    text = (ROOT / "aeq_onnx" / "data" / "imagenet_classes.txt").read_text(encoding="utf-8")
    return text.splitlines()


def _tile(image: Any, lines: Sequence[str]) -> Any:
    from PIL import Image, ImageDraw, ImageFont

    tile = Image.new("RGB", (TILE, TILE + HEAD), "white")
    tile.paste(image.resize((TILE, TILE)), (0, HEAD))
    draw = ImageDraw.Draw(tile)
    for row, line in enumerate(lines):
        draw.text((3, 3 + 14 * row), line[:26], fill=(0, 0, 0), font=ImageFont.load_default())
    return tile


def figure(model: Path, name: str) -> Any:
    """photo | AE top-1 | AE top-2 | versus top-1 vs top-2 | versus top-2 vs top-1."""
    from PIL import Image

    x, crop = photo(IMAGES / name)
    classes = _names()
    ae = aeq_onnx.Explainer(model, isolate=False)
    versus = aeq_onnx.Explainer(model, contrast="versus", isolate=False)
    first = ae.explain(x)
    top = np.argsort(-first.logits[0])[:2]
    a, b = (classes[int(c)].split(",")[0] for c in top)
    tiles = [_tile(crop, [name, "(photo)"])]
    for c, label in zip(top, (a, b), strict=True):
        tiles.append(_tile(overlay(crop, ae.explain(x, target=int(c)).relevance[0]),
                           ["AE (logit)", label]))
    for c, label, other in ((top[0], a, b), (top[1], b, a)):
        result = versus.explain(x, target=int(c))  # K = the runner-up to c: the other one
        tiles.append(_tile(overlay(crop, result.relevance[0]),
                           [f"versus: {label}", f"  and not {other}"]))
    out = Image.new("RGB", (len(tiles) * (TILE + 2), TILE + HEAD), "white")
    for i, tile in enumerate(tiles):
        out.paste(tile, (i * (TILE + 2), 0))
    return out.quantize(colors=96)


def cmd_maps() -> None:
    model = lite0()
    folder = ROOT / "docs" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in PAIRS:
        figure(model, name).save(folder / target, optimize=True)
        size = (folder / target).stat().st_size
        print(f"wrote {(folder / target).relative_to(ROOT)} ({size // 1024} KiB)")


def _session(proto: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def cmd_cost(rounds: int, batch: int) -> str:
    """Median run time per variant over interleaved rounds, relative to ``logit``."""
    model = lite0()
    x = np.concatenate([photo(IMAGES / n)[0] for n in sorted(os.listdir(IMAGES))
                        if n.endswith(".jpg")][:batch])
    protos = {c: aeq_onnx.compile_explainer(model, contrast=c, isolate=False) for c in CONTRASTS}
    sessions = {c: _session(p) for c, p in protos.items()}
    data = next(i.name for i in sessions["logit"].get_inputs() if i.name != "target")
    feed = {data: x, "target": np.full(len(x), -1, np.int64)}
    times: dict[str, list[float]] = {c: [] for c in CONTRASTS}
    for c in CONTRASTS:
        sessions[c].run(["relevance"], feed)  # warm-up
    for _ in range(rounds):
        for c in CONTRASTS:
            start = time.perf_counter()
            sessions[c].run(["relevance"], feed)
            times[c].append(time.perf_counter() - start)
    load = os.getloadavg()[0]
    base = float(np.median(times["logit"]))
    lines = ["| contrast | extra propagation | median s / batch | ratio vs logit | nodes | "
             "MB |", "|---|---|---|---|---|---|"]
    for c in CONTRASTS:
        med = float(np.median(times[c]))
        lines.append(f"| `{c}` | {'yes (2nd relevance chain)' if c == 'dual' else 'no'} | "
                     f"{med:.3f} | {med / base:.2f} | {len(protos[c].graph.node)} | "
                     f"{protos[c].ByteSize() / 1e6:.1f} |")
    table = "\n".join(lines)
    text = (f"# Contrast variants: explainer cost (issue 23)\n\n"
            f"`.venv/bin/python -m benchmarks.contrast.product cost --rounds {rounds} --batch "
            f"{batch}`; EfficientNet-Lite0 (224x224), batch {len(x)} of the bundled photos, "
            f"onnxruntime {ort.__version__} CPU, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores shared with other jobs (load average {load:.1f} at the end); "
            f"{rounds} interleaved rounds, median. `dual`'s second relevance chain reuses the "
            f"first chain's derived weight constants.\n\n{table}\n")
    out = ROOT / "benchmarks" / "results" / "CONTRAST-COST.md"
    out.write_text(text, encoding="utf-8")
    print(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("maps")
    cost = sub.add_parser("cost")
    cost.add_argument("--rounds", type=int, default=7)
    cost.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    if args.cmd == "maps":
        cmd_maps()
    else:
        cmd_cost(args.rounds, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
