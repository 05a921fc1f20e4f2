"""``report.json``, ``report.md`` and a self-contained ``report.html`` (tables, example heatmaps
per method as embedded PNGs, mean insertion/deletion and sanity curves as inline SVG)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from aeq_onnx.audit import summary
from aeq_onnx.audit.engine import AuditConfig, AuditRun
from aeq_onnx.imaging import colorize, normalise

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def build(run: AuditRun, info: dict[str, Any]) -> dict[str, Any]:
    """The report as one JSON-able dict."""
    table = summary.table(run.rows, run.sanity, run.methods)
    return {**info, "methods": run.methods, "table": table,
            "columns": [c for c, _, _ in summary.COLUMNS
                        if any(c in v for v in table.values())],
            "curves": summary.mean_curves(run.rows, run.methods),
            "sanity": summary.sanity_curves(run.sanity, run.methods),
            "failures": [{"item": i, "error": e} for i, e in run.failures],
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


def markdown(report: dict[str, Any]) -> str:
    """``report.md``."""
    parts = [f"# Audit of {report['model']}", "",
             f"{report['cases']} cases, command: `{report['command']}` ({report['date']}).", "",
             markdown_table(report), "", "↑ higher is better, ↓ lower is better; best in bold."]
    if report["failures"]:
        parts += ["", "## Failures", ""] + [f"- {f['item']}: {f['error']}"
                                            for f in report["failures"]]
    return "\n".join(parts) + "\n"


def _png(rgb: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, format="PNG")
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


def display(heat: np.ndarray) -> np.ndarray:
    """A heatmap as RGB: signed maps centred on zero (red for, blue against); maps that are
    never negative (RISE, Grad-CAM) stretched from their minimum to their maximum."""
    if heat.min() >= 0 and heat.max() > heat.min():
        return colorize((heat - heat.min()) / (heat.max() - heat.min()))
    return colorize(normalise(heat))


def _examples(run: AuditRun, config: AuditConfig, limit: int = 4) -> str:
    """A row of heatmaps per example case, one per method."""
    cases = list(dict.fromkeys(r["case"] for r in run.rows))[:limit]
    by_key = {(r["case"], r["method"]): r for r in run.rows}
    heads = "".join(f"<th>{html.escape(m)}</th>" for m in run.methods)
    body = []
    for case in cases:
        cells = []
        for method in run.methods:
            row = by_key.get((case, method))
            if row is None:
                cells.append("<td>–</td>")
                continue
            heat = np.load(config.out / row["heatmap"])
            cells.append(f'<td><img width="112" src="{_png(display(heat))}" '
                         f'alt="{html.escape(method)}"></td>')
        body.append(f"<tr><th>{html.escape(case)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>case</th>{heads}</tr>{''.join(body)}</table>"


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


def _sanity_plots(report: dict[str, Any]) -> str:
    plots = []
    for key in ("ssim", "spearman"):
        series = {m: [p[key] or 0.0 for p in pts] for m, pts in report["sanity"].items() if pts}
        if series:
            plots.append(_svg(series, f"sanity check: {key} vs original, by layers randomised"))
    return "".join(plots)


STYLE = ("body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;"
         "margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .5em}figure{display:inline-"
         "block;margin:.5em}img{image-rendering:pixelated}.fail{color:#a00}")


def html_page(report: dict[str, Any], run: AuditRun, config: AuditConfig) -> str:
    """``report.html``: everything inline, no external file."""
    esc = html.escape
    curves = "".join(_svg(series, f"mean {name.replace('_', ' ')} curve")
                     for name, series in sorted(report["curves"].items()))
    fails = "".join(f'<li class="fail">{esc(f["item"])}: {esc(f["error"])}</li>'
                    for f in report["failures"])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>aeq audit</title>"
            f"<style>{STYLE}</style></head><body><h1>Audit of {esc(report['model'])}</h1>"
            f"<p>{report['cases']} cases; <code>{esc(report['command'])}</code> "
            f"({esc(report['date'])})</p>{html_table(report)}"
            f"<p>↑ higher is better, ↓ lower is better; best in bold.</p>"
            f"<h2>Curves</h2>{curves}{_sanity_plots(report)}"
            f"<h2>Example heatmaps</h2>{_examples(run, config)}"
            f"<h2>Failures</h2><ul>{fails or '<li>none</li>'}</ul></body></html>")


def write(run: AuditRun, config: AuditConfig, info: dict[str, Any]) -> dict[str, Path]:
    """Write the three report files into ``config.out``; returns their paths."""
    report = build(run, info)
    paths = {k: config.out / f"report.{k}" for k in ("json", "md", "html")}
    paths["json"].write_text(json.dumps(report, indent=1, sort_keys=True) + "\n",
                             encoding="utf-8")
    paths["md"].write_text(markdown(report), encoding="utf-8")
    paths["html"].write_text(html_page(report, run, config), encoding="utf-8")
    return paths
