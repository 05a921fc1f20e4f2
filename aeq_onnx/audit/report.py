"""``report.json``, ``report.md`` and a self-contained ``report.html`` (tables, example photos
with each method's overlay and heatmap as embedded PNGs, mean insertion/deletion and sanity
curves as inline SVG), and ``run.json`` (command, date, engine and throughput).

The three reports depend on the rows only, never on the order they were computed in, so the
local engine, Ray with any number of workers and a resumed run write the same bytes: tables
from :mod:`.summary` (canonical order, exact means), failures sorted, examples the first cases
by key. What differs from run to run (the command line, the date, the engine, timings) is in
``run.json`` alone."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from aeq_onnx.audit import summary
from aeq_onnx.audit.config import AuditConfig, AuditRun
from aeq_onnx.audit.store import Row, canonical
from aeq_onnx.errors import InputError
from aeq_onnx.render.imaging import colorize, load_image, normalise, overlay, save_png
from aeq_onnx.render.presets import preprocess

#: Keys of the audit's info that describe the run, not its results: ``run.json`` only.
RUN_KEYS = ("command", "date")

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def build(run: AuditRun, info: dict[str, Any]) -> dict[str, Any]:
    """The report as one JSON-able dict (``info`` less :data:`RUN_KEYS`)."""
    table = summary.table(run.rows, run.sanity, run.methods, run.randomisation)
    info = {k: v for k, v in info.items() if k not in RUN_KEYS}
    return {**info, "methods": run.methods, "table": table,
            "columns": [c for c, _, _ in summary.COLUMNS
                        if any(c in v for v in table.values())],
            "curves": summary.mean_curves(run.rows, run.methods),
            "sanity": summary.sanity_curves(run.sanity, run.methods),
            "randomisation": summary.randomisation_table(run.randomisation, run.methods),
            "failures": [{"item": i, "error": e} for i, e in sorted(set(run.failures))],
            "cases": len({r["case"] for r in run.rows})}


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown_table(report: dict[str, Any]) -> str:
    """Methods x metrics, best per column in bold."""
    heads = {c: (h, up) for c, h, up in summary.COLUMNS}
    cols = report["columns"]
    lines = ["| method | cases | " + " | ".join(heads[c][0].replace("|", "\\|") for c in cols)
             + " |",
             "|---|---|" + "---|" * len(cols)]
    winners = {c: summary.best(report["table"], c, heads[c][1]) for c in cols}
    for method in report["methods"]:
        row = report["table"][method]
        cells = [f"**{_fmt(row.get(c))}**" if method in winners[c] else _fmt(row.get(c))
                 for c in cols]
        lines.append(f"| {method} | {row['cases']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _levels(report: dict[str, Any]) -> list[tuple[int, str]]:
    """The randomisation levels some method has, fewest tensors first."""
    return sorted({(p["tensors"], p["level"]) for pts in report["randomisation"].values()
                   for p in pts})


def randomisation_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the randomisation table: per method and level ``signed / |R|``."""
    levels = _levels(report)
    head = ["method", *(f"{name} ({k})" for k, name in levels)]
    rows = []
    for method in report["methods"]:
        points = {p["tensors"]: p for p in report["randomisation"].get(method, [])}
        rows.append([method, *(f"{_fmt(points[k]['spearman'])} / "
                               f"{_fmt(points[k]['spearman_abs'])}" if k in points else "–"
                               for k, _ in levels)])
    return head, rows


RANDOMISATION_NOTE = ("Spearman rank correlation with the original heatmap (signed / of |R|) "
                      "after re-drawing the weight tensors of the N layers nearest the output "
                      "(classifier first) from N(0, std²) of their own values; the target is "
                      "kept. Nearer 0 means the map depends on those weights.")


def markdown_randomisation(report: dict[str, Any]) -> list[str]:
    """The weight-randomisation section of ``report.md`` (none without its rows)."""
    if not _levels(report):
        return []
    head, rows = randomisation_rows(report)
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in head) + " |",
             "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    return ["", "## Weight randomisation", "", RANDOMISATION_NOTE, "", *lines]


def markdown(report: dict[str, Any]) -> str:
    """``report.md``."""
    parts = [f"# Audit of {report['model']}", "",
             f"{report['cases']} cases; command, date and engine in `run.json`.", "",
             markdown_table(report), "", "↑ higher is better, ↓ lower is better; best in bold.",
             *markdown_randomisation(report)]
    if report["failures"]:
        parts += ["", "## Failures", ""] + [f"- {f['item']}: {f['error']}"
                                            for f in report["failures"]]
    return "\n".join(parts) + "\n"


def _png(image: Any) -> str:
    """A PIL image or uint8 RGB array as a ``data:`` URL (PNG, no metadata: same bytes)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image.astype(np.uint8))
    buffer = io.BytesIO()
    save_png(image, buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _svg(series: dict[str, list[float]], title: str, plot: int = 300,
         height: int = 200) -> str:
    """A line plot of ``series`` (x evenly spaced in [0, 1], y in [0, max]); legend right."""
    top = max([max(v) for v in series.values() if v] + [1e-12])
    paths = []
    for i, (name, ys) in enumerate(series.items()):
        pts = " ".join(f"{30 + plot * k / max(len(ys) - 1, 1):.1f},"
                       f"{height - 25 - (height - 45) * y / top:.1f}" for k, y in enumerate(ys))
        color = PALETTE[i % len(PALETTE)]
        paths.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                     f'points="{pts}"><title>{html.escape(name)}</title></polyline>'
                     f'<text x="{plot + 40}" y="{28 + 12 * i}" font-size="10" '
                     f'fill="{color}">{html.escape(name)}</text>')
    return (f'<figure><svg width="{plot + 170}" height="{height}" role="img">'
            f'<rect x="30" y="20" width="{plot}" height="{height - 45}" fill="none" '
            f'stroke="#999"/>{"".join(paths)}<text x="30" y="{height - 8}" font-size="10">0'
            f'</text><text x="{plot + 30}" y="{height - 8}" font-size="10" '
            f'text-anchor="end">1</text><text x="2" y="24" font-size="10">{top:.2g}</text>'
            f'</svg><figcaption>{html.escape(title)}</figcaption></figure>')


def scaled(heat: np.ndarray) -> np.ndarray:
    """A heatmap in [-1, 1] as shown: signed maps centred on zero and scaled by the 99.5th
    percentile of |R| (:func:`imaging.normalise`; red for, blue against); maps that are never
    negative (RISE, Grad-CAM) stretched from their minimum (0) to their maximum (1)."""
    heat = np.asarray(heat, np.float64)
    if heat.min() >= 0 and heat.max() > heat.min():
        return (heat - heat.min()) / (heat.max() - heat.min())
    return normalise(heat)


def _photo(row: Row, config: AuditConfig) -> Any:
    """The photo of a row as the model saw it (resized and cropped), None if unreadable now."""
    try:
        return preprocess(load_image(row["path"]), config.preset, config.spec)[1]
    except InputError:
        return None


def _img(image: Any, kind: str, alt: str) -> str:
    return f'<img class="{kind}" width="112" src="{_png(image)}" alt="{html.escape(alt)}">'


def _method_cell(row: Row | None, photo: Any, config: AuditConfig) -> str:
    """Overlay (``aeq explain``'s: the heatmap over the grey photo) beside the bare heatmap.
    The overlay gets the displayed values, which are in [-1, 1] with a maximum |value| of 1, so
    its own scaling (``percentile=100``: divide by that maximum) leaves them as they are."""
    if row is None:
        return "<td>–</td>"
    name = f"{row['case']}: {row['method']}"
    shown = scaled(np.load(config.out / row["heatmap"]))
    over = "–" if photo is None else _img(overlay(photo, shown, percentile=100.0), "overlay",
                                          f"{name} overlay")
    return f"<td>{over}{_img(colorize(shown), 'heat', f'{name} heatmap')}</td>"


def _examples(run: AuditRun, config: AuditConfig, limit: int = 4) -> str:
    """Per example case (the first ``limit`` case keys in sorted order, whatever order they
    completed in): the photo, then per method its overlay and its heatmap."""
    rows = canonical(run.rows)
    cases = sorted({str(r["case"]) for r in rows})[:limit]
    by_key = {(r["case"], r["method"]): r for r in rows}
    heads = "".join(f"<th>{html.escape(m)}<br><small>overlay | heatmap</small></th>"
                    for m in run.methods)
    body = []
    for case in cases:
        first = next(r for r in rows if r["case"] == case)
        photo = _photo(first, config)
        shown = "–" if photo is None else _img(photo, "photo", f"photo {case}")
        cells = "".join(_method_cell(by_key.get((case, m)), photo, config) for m in run.methods)
        body.append(f"<tr><th>{html.escape(case)}</th><td>{shown}</td>{cells}</tr>")
    return f"<table><tr><th>case</th><th>photo</th>{heads}</tr>{''.join(body)}</table>"


def html_table(report: dict[str, Any]) -> str:
    """The methods x metrics table as HTML, best per column in bold."""
    heads = {c: (h, up) for c, h, up in summary.COLUMNS}
    cols = report["columns"]
    winners = {c: summary.best(report["table"], c, heads[c][1]) for c in cols}
    head = "".join(f"<th>{html.escape(heads[c][0])}</th>" for c in cols)
    rows = []
    for method in report["methods"]:
        row = report["table"][method]
        cells = "".join(f"<td><b>{_fmt(row.get(c))}</b></td>" if method in winners[c]
                        else f"<td>{_fmt(row.get(c))}</td>" for c in cols)
        rows.append(f"<tr><th>{html.escape(method)}</th><td>{row['cases']}</td>{cells}</tr>")
    return f"<table><tr><th>method</th><th>cases</th>{head}</tr>{''.join(rows)}</table>"


def html_randomisation(report: dict[str, Any]) -> str:
    """The weight-randomisation table of ``report.html`` (empty without its rows)."""
    if not _levels(report):
        return ""
    head, rows = randomisation_rows(report)
    heads = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + f"<th>{html.escape(r[0])}</th>"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in r[1:]) + "</tr>" for r in rows)
    return (f"<h2>Weight randomisation</h2><p>{html.escape(RANDOMISATION_NOTE)}</p>"
            f"<table><tr>{heads}</tr>{body}</table>")


def _sanity_plots(report: dict[str, Any]) -> str:
    plots = []
    for key in ("ssim", "spearman"):
        series = {m: [p[key] or 0.0 for p in pts] for m, pts in report["sanity"].items() if pts}
        if series:
            plots.append(_svg(series, f"sanity check: {key} vs original, by layers randomised"))
    return "".join(plots)


STYLE = ("body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;"
         "margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .5em}figure{display:inline-"
         "block;margin:.5em}img{image-rendering:pixelated}img+img{margin-left:4px}"
         ".fail{color:#a00}")


def html_page(report: dict[str, Any], run: AuditRun, config: AuditConfig) -> str:
    """``report.html``: everything inline, no external file."""
    esc = html.escape
    curves = "".join(_svg(series, f"mean {name.replace('_', ' ')} curve")
                     for name, series in sorted(report["curves"].items()))
    fails = "".join(f'<li class="fail">{esc(f["item"])}: {esc(f["error"])}</li>'
                    for f in report["failures"])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>aeq audit</title>"
            f"<style>{STYLE}</style></head><body><h1>Audit of {esc(report['model'])}</h1>"
            f"<p>{report['cases']} cases; command, date and engine in <code>run.json</code>."
            f"</p>{html_table(report)}"
            f"<p>↑ higher is better, ↓ lower is better; best in bold.</p>"
            f"{html_randomisation(report)}<h2>Curves</h2>{curves}{_sanity_plots(report)}"
            f"<h2>Examples</h2><p>The photo as the model sees it; per method the heatmap over "
            f"the photo (grey where the heatmap is near zero) and the heatmap itself "
            f"(red: for the class, blue: against).</p>{_examples(run, config)}"
            f"<h2>Failures</h2><ul>{fails or '<li>none</li>'}</ul></body></html>")


def run_info(run: AuditRun, info: dict[str, Any]) -> dict[str, Any]:
    """``run.json``: :data:`RUN_KEYS` of ``info``, the engine and (Ray) its throughput."""
    out: dict[str, Any] = {k: info[k] for k in RUN_KEYS if k in info}
    throughput = getattr(run, "throughput", None)
    out["engine"] = "local" if throughput is None else "ray"
    if throughput is not None:
        out.update({"workers": throughput.workers, "images": throughput.images,
                    "wall_s": round(throughput.wall_s, 3), "busy_s": round(throughput.busy_s, 3),
                    "throughput": throughput.line()})
    return out


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def write(run: AuditRun, config: AuditConfig, info: dict[str, Any]) -> dict[str, Path]:
    """Write ``report.{json,md,html}`` (the same bytes for the same rows, in any order) and
    ``run.json`` into ``config.out``; returns their paths."""
    report = build(run, info)
    paths = {k: config.out / f"report.{k}" for k in ("json", "md", "html")}
    paths["json"].write_text(_dump(report), encoding="utf-8")
    paths["md"].write_text(markdown(report), encoding="utf-8")
    paths["html"].write_text(html_page(report, run, config), encoding="utf-8")
    paths["run"] = config.out / "run.json"
    paths["run"].write_text(_dump(run_info(run, info)), encoding="utf-8")
    return paths
