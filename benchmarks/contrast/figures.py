"""Figures of the photo study: for each photo, the maps of selected variants for the top-1 and
top-2 classes, overlaid on the photo (red: for the class, blue: against;
``aeq_onnx.render.heatmaps``), from the heatmaps cached by ``photos.run_photo``::

    .venv/bin/python -m benchmarks.contrast.figures      # benchmarks/results/contrast/*.jpg
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aeq_onnx.render.heatmaps import overlay
from benchmarks.contrast.photos import load_photo_crop
from benchmarks.contrast.run import CACHE, ROOT

SHOW = ("logit", "margin", "versus", "dual", "ae×cam-margin", "ae×cam-versus", "gradcam")
TILE, LABEL, GAP = 168, 120, 3


def figure(record: dict, heats: dict[str, np.ndarray]) -> object:
    """A (variants x {top-1, top-2}) grid of overlays with row and column labels."""
    from PIL import Image, ImageDraw, ImageFont

    crop = load_photo_crop(Path(record["source"]))
    font = ImageFont.load_default()
    width = LABEL + 2 * (TILE + GAP)
    canvas = Image.new("RGB", (width, 30 + len(SHOW) * (TILE + GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    for col, key in enumerate(("top1", "top2")):
        name, p = record[key][1], record[key][2]
        draw.text((LABEL + col * (TILE + GAP), 4), f"{name[:24]} ({p:.2f})", fill=(0, 0, 0),
                  font=font)
    for row, variant in enumerate(SHOW):
        y = 30 + row * (TILE + GAP)
        draw.text((4, y + TILE // 2 - 6), variant, fill=(0, 0, 0), font=font)
        for col, key in enumerate(("top1", "top2")):
            tile = overlay(crop, heats[f"{key}/{variant}"].astype(np.float64))
            canvas.paste(tile.resize((TILE, TILE)), (LABEL + col * (TILE + GAP), y))
    return canvas


def main() -> None:
    out = ROOT / "benchmarks" / "results" / "contrast"
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(CACHE.glob("photo-*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        heats = dict(np.load(path.with_suffix(".npz")))
        target = out / f"{Path(record['photo']).stem}.jpg"
        figure(record, heats).save(target, quality=85)  # type: ignore[attr-defined]
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
