"""The reports of ``aeq compare``: ``compare.json`` (settings, summary, one row per image),
``compare.md`` (the summary table and the per-image table), ``index.html`` (the tables and,
per image, photo | heatmap A | heatmap B) and the PNGs under ``images/``. Each file is
written whole or not at all, and holds no time or machine detail: the same inputs give the
same bytes."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aeq_onnx.audit.compare.agreement import METRICS
from aeq_onnx.render.heatmaps import colorize, normalise, save_png
from aeq_onnx.run.saving import atomic_output

#: Column titles of the metrics.
TITLES = {"top1_agree": "top-1 agree", "top5_overlap": "top-5 overlap",
          "spearman": "Spearman", "ssim": "SSIM", "iou_top": "IoU top"}
STYLE = ("body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;"
         "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
         "td:first-child,th:first-child{text-align:left}figure{margin:0 0 1.5em 0}"
         "figure img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd}"
         ".failed{color:#a00}")


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _iou_title(info: Mapping[str, Any]) -> str:
    return f"IoU top {100 * float(info['top_fraction']):g} %"


def summary_table(comparison: Any) -> str:
    """The summary as a Markdown table: per metric the mean, the minimum and how many images
    left it undefined."""
    lines = ["| metric | mean | min | undefined |", "|---|---:|---:|---:|"]
    for name in METRICS:
        title = _iou_title(comparison.info) if name == "iou_top" else TITLES[name]
        entry = comparison.summary[name]
        lines.append(f"| {title} | {_fmt(entry['mean'])} | {_fmt(entry['min'])} | "
                     f"{entry['undefined']} |")
    return "\n".join(lines)


def _row_cells(row: Mapping[str, Any]) -> list[str]:
    return [row["image"], f"{row['target_name']} ({row['target']})", _fmt(row["prob_a"]),
            _fmt(row["prob_b"]), str(row["top1_a"]), str(row["top1_b"]),
            *(_fmt(row[name]) for name in METRICS)]


def _headers(info: Mapping[str, Any]) -> list[str]:
    return ["image", "target", "p(A)", "p(B)", "top-1 A", "top-1 B",
            *(_iou_title(info) if m == "iou_top" else TITLES[m] for m in METRICS)]


def markdown(comparison: Any) -> str:
    """``compare.md``: what was compared, the summary, the rows and the failures."""
    info = comparison.info
    head = (f"# aeq compare\n\nA: `{info['model_a']}`  \nB: `{info['model_b']}`  \n"
            f"{comparison.summary['images']} image(s), target: {info['target']}, method "
            f"{info['method']}, preset {info['preset']}\n\n")
    headers = _headers(info)
    rows = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    rows += ["| " + " | ".join(_row_cells(r)) + " |" for r in comparison.rows]
    failed = "".join(f"- {path}: {why}\n" for path, why in comparison.failures)
    return (head + "## Summary\n\n" + summary_table(comparison) + "\n\n## Per image\n\n"
            + "\n".join(rows) + "\n" + (f"\n## Failed\n\n{failed}" if failed else ""))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(text).stem).strip("-").lower()[:40] or "image"


def _tile(image: Any, side: int) -> Any:
    from PIL import Image

    factor = max(1, -(-side // max(1, min(image.size))))
    return image.resize((image.size[0] * factor, image.size[1] * factor),
                        Image.Resampling.NEAREST)


def side_by_side(photo: Any, heat_a: np.ndarray, heat_b: np.ndarray, title: str) -> Any:
    """photo | heatmap A | heatmap B under a title line (each map scaled by its own 99.5th
    percentile of |heat|)."""
    from PIL import Image, ImageDraw, ImageFont

    maps = [Image.fromarray(colorize(normalise(h)), "RGB") for h in (heat_a, heat_b)]
    tiles = [_tile(m, 224) for m in maps]
    tiles.insert(0, photo.convert("RGB").resize(tiles[0].size, Image.Resampling.BILINEAR))
    gap, header = 4, 24
    width, height = tiles[0].size
    canvas = Image.new("RGB", (3 * width + 4 * gap, height + header + gap), "white")
    for i, tile in enumerate(tiles):
        canvas.paste(tile, (gap + i * (width + gap), header))
    ImageDraw.Draw(canvas).text((gap, 5), title, fill=(0, 0, 0),
                                font=ImageFont.load_default())
    return canvas


def _html(comparison: Any, pngs: Mapping[str, str]) -> str:
    esc = html.escape
    info = comparison.info
    summary = "".join(
        f"<tr><td>{esc(_iou_title(info) if n == 'iou_top' else TITLES[n])}</td>"
        f"<td>{_fmt(comparison.summary[n]['mean'])}</td><td>{_fmt(comparison.summary[n]['min'])}"
        f"</td><td>{comparison.summary[n]['undefined']}</td></tr>" for n in METRICS)
    rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in _row_cells(r)) + "</tr>"
                   for r in comparison.rows)
    figures = "".join(
        f"<figure><img src=\"{esc(pngs[r['image']])}\" alt=\"{esc(r['image'])}\"><figcaption>"
        f"{esc(r['image'])}: {esc(r['target_name'])} ({r['target']}); SSIM {_fmt(r['ssim'])}, "
        f"Spearman {_fmt(r['spearman'])}</figcaption></figure>"
        for r in comparison.rows if r["image"] in pngs)
    failed = "".join(f"<li class=\"failed\">{esc(p)}: {esc(m)}</li>"
                     for p, m in comparison.failures)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>aeq compare"
        f"</title><style>{STYLE}</style></head><body>\n<h1>aeq compare</h1>\n"
        f"<p>A: <code>{esc(info['model_a'])}</code><br>B: <code>{esc(info['model_b'])}</code>"
        f"<br>target: {esc(str(info['target']))}; method {esc(str(info['method']))}; preset "
        f"{esc(info['preset'])}</p>\n<table><tr><th>metric</th><th>mean</th><th>min</th>"
        f"<th>undefined</th></tr>{summary}</table>\n<table><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in _headers(info)) + f"</tr>{rows}</table>\n"
        + (f"<h2>Failed</h2><ul>{failed}</ul>\n" if failed else "")
        + "<p>Panels: photo as the models see it | heatmap of A | heatmap of B (red: for the "
          "class, blue: against).</p>\n" + figures + "\n</body></html>\n")


def write_reports(out: Path, comparison: Any,
                  pictures: Mapping[str, tuple[Any, np.ndarray, np.ndarray]]) -> dict[str, Path]:
    """Write the PNGs and the three reports into ``out``; their paths by kind."""
    pngs: dict[str, str] = {}
    for index, row in enumerate(comparison.rows):
        crop, heat_a, heat_b = pictures[row["image"]]
        name = f"images/{index:04d}-{_slug(row['image'])}.png"
        title = (f"{Path(row['image']).name}: {row['target_name']} ({row['target']})  "
                 f"A | B  SSIM {_fmt(row['ssim'])}")
        with atomic_output(out / name) as part:
            save_png(side_by_side(crop, heat_a, heat_b, title), part)
        pngs[row["image"]] = name
    data = {"info": comparison.info, "summary": comparison.summary, "rows": comparison.rows,
            "failures": [{"image": p, "error": m} for p, m in comparison.failures]}
    texts = {"json": ("compare.json", json.dumps(data, indent=1, sort_keys=True) + "\n"),
             "md": ("compare.md", markdown(comparison)),
             "html": ("index.html", _html(comparison, pngs))}
    files: dict[str, Path] = {}
    for kind, (name, text) in texts.items():
        with atomic_output(out / name) as part:
            part.write_text(text, encoding="utf-8")
        files[kind] = out / name
    return files
