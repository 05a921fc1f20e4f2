"""Tables of the contrast study from the cached per-sample results, and the goal check of
issue 23 (every criterion against AE = the ``logit`` variant, on the same samples)."""

from __future__ import annotations

import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.contrast.metrics import summary
from benchmarks.contrast.variants import BY_NAME, VARIANTS

ENERGY_SLACK = 0.005  # "energy pointing does not drop": not lower than AE's by more than this


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return summary([r[key] for r in rows])[0]


def _cost(name: str) -> str:
    v = BY_NAME[name]
    props = sum(not s.startswith("cam:") for s in v.sources)
    cam = " +C" if any(s.startswith("cam:") for s in v.sources) else ""
    return f"{props}{cam}"


def goal(m: dict[str, float], ae: dict[str, float], localised: bool) -> list[str]:
    """The failed criteria of one variant (empty: the goal is met)."""
    failed = []
    if not (m["rand1_signed"] < 0.3 and m["rand1_abs"] < 0.3):
        failed.append("sanity")
    if m["insertion"] < 0.95 * ae["insertion"]:
        failed.append("ins")
    if m["deletion"] > 1.05 * ae["deletion"]:
        failed.append("del")
    if localised and m["distractor"] >= ae["distractor"]:
        failed.append("distr")
    if localised and m["energy"] < ae["energy"] - ENERGY_SLACK:
        failed.append("energy")
    return failed


def _fmt(v: float, digits: int = 3) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.{digits}f}"


def _nan(m: dict[str, float], key: str) -> str:
    """`` (k†)`` when k samples gave a constant map (Spearman undefined, left out of the mean)."""
    k = int(m.get(f"{key}#nan", 0))
    return f" ({k}†)" if k else ""


def standard_errors(samples: list[dict[str, dict[str, float]]], key: str) -> tuple[float, float]:
    """Smallest and largest standard error of the mean of ``key`` over the variants."""
    errors = []
    for v in VARIANTS:
        if not all(v.name in s for s in samples):
            continue
        values = np.array([s[v.name][key] for s in samples], np.float64)
        values = values[np.isfinite(values)]
        if len(values) > 1:
            errors.append(float(values.std(ddof=1) / np.sqrt(len(values))))
    return (min(errors), max(errors)) if errors else (math.nan, math.nan)


def aggregate(samples: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of every metric per variant over the samples (non-finite values left out)."""
    out = {}
    for v in VARIANTS:
        if all(v.name in s for s in samples):
            rows = [s[v.name] for s in samples]
            out[v.name] = {k: _mean(rows, k) for k in rows[0]}
            out[v.name].update({f"{k}#nan": float(summary([r[k] for r in rows])[1])
                                for k in rows[0]})
    return out


def table(agg: dict[str, dict[str, float]], levels: list[int], localised: bool
          ) -> tuple[str, dict[str, list[str]]]:
    """Markdown table and the failed criteria per variant."""
    ae = agg["logit"]
    rand = [f"rand{lvl}" for lvl in levels]
    head = ["variant", "round", "AE runs", "insertion ↑", "deletion ↓"]
    if localised:
        head += ["energy ↑", "distractor ↓", "pointing ↑"]
    head += ["top-2 ρ (info)"] + [f"rand {lvl} s / \\|R\\| ↓" for lvl in levels] + ["goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdict = {}
    for v in VARIANTS:
        if v.name not in agg:
            lines.append(f"| `{v.name}` | {v.round} | {_cost(v.name)} | not measured |")
            verdict[v.name] = ["not measured"]
            continue
        m = agg[v.name]
        failed = goal(m, ae, localised) if v.kind != "reference" else ["(not AE)"]
        failed = ["(baseline)"] if v.name == "logit" else failed
        verdict[v.name] = failed
        cells = [f"`{v.name}`", str(v.round), _cost(v.name), _fmt(m["insertion"]),
                 _fmt(m["deletion"])]
        if localised:
            cells += [_fmt(m["energy"]), _fmt(m["distractor"], 4), _fmt(m["pointing"])]
        cells += [_fmt(m["top2"]) + _nan(m, "top2")]
        cells += [f"{_fmt(m[f'{r}_signed'])} / {_fmt(m[f'{r}_abs'])}" + _nan(m, f"{r}_signed")
                  for r in rand]
        mark = "" if failed and failed[0].startswith("(") else "✗ "
        cells.append("**met**" if not failed else mark + ", ".join(failed))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), verdict


def _with_extras(cache: Path, name: str) -> dict[str, Any] | None:
    """The cached record ``name`` with the variants of the same file in any tag sub-folder
    merged in (same samples, same randomisation seeds); None when the main file is missing."""
    path = cache / name
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    for extra in sorted(cache.glob(f"*/{name}")):
        more = json.loads(extra.read_text(encoding="utf-8"))
        record["seconds"] += more["seconds"]
        if "samples" in record:
            by_index = {s["index"]: s for s in more["samples"]}
            for s in record["samples"]:
                s["metrics"].update(by_index[s["index"]]["metrics"])
        else:
            record["metrics"].update(more["metrics"])
    return record


def load_scenes(cache: Path, model: str, n: int, parts: int) -> dict[str, Any] | None:
    """The merged parts of one scene run, or None when a part is missing."""
    records = []
    for part in range(parts):
        record = _with_extras(cache, f"scenes-{model}-n{n}-p{part}of{parts}.json")
        if record is None:
            return None
        records.append(record)
    merged = dict(records[0])
    merged["samples"] = [s for r in records for s in r["samples"]]
    merged["seconds"] = sum(r["seconds"] for r in records)
    return merged


def load_photos(cache: Path) -> list[dict[str, Any]]:
    """Every cached photo record, in file-name order."""
    records = [_with_extras(cache, p.name) for p in sorted(cache.glob("photo-*.json"))]
    return [r for r in records if r is not None]


def _errors(samples: list[dict[str, dict[str, float]]]) -> str:
    """One line: the range of the standard errors of the means over the variants."""
    parts = []
    for key, label in (("insertion", "insertion"), ("deletion", "deletion"),
                       ("rand1_signed", "rand 1 signed"), ("top2", "top-2 ρ")):
        lo, hi = standard_errors(samples, key)
        parts.append(f"{label} {_fmt(lo)}–{_fmt(hi)}")
    return "Standard errors of the means (range over the variants): " + ", ".join(parts) + "."


def paired(samples: list[dict[str, dict[str, float]]], localised: bool) -> str:
    """Paired differences against AE on the same samples: mean ± standard error, in % of AE's
    mean for insertion and deletion."""
    keys = ["insertion", "deletion"] + (["energy", "distractor"] if localised else [])
    head = ["variant"] + [f"Δ {k}" + (" (% of AE)" if k in ("insertion", "deletion") else "")
                          for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in VARIANTS:
        if v.name == "logit" or not all(v.name in s for s in samples):
            continue
        cells = [f"`{v.name}`"]
        for k in keys:
            d = np.array([s[v.name][k] - s["logit"][k] for s in samples], np.float64)
            d = d[np.isfinite(d)]
            mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
            if k in ("insertion", "deletion"):
                base = float(np.mean([s["logit"][k] for s in samples]))
                cells.append(f"{100 * mean / base:+.1f} ± {100 * se / base:.1f}")
            else:
                cells.append(f"{mean:+.4f} ± {se:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def definitions() -> str:
    """The variant table: formula, kind, round and AE propagations."""
    lines = ["| variant | kind | round | formula (heatmap = channel sum) | AE runs |",
             "|---|---|---|---|---|"]
    for v in VARIANTS:
        lines.append(f"| `{v.name}` | {v.kind} | {v.round} | {v.formula} | {_cost(v.name)} |")
    return "\n".join(lines)


def photo_section(photos: list[dict[str, Any]]) -> tuple[str, dict[str, list[str]]]:
    """Mean table over the photos and a per-photo table of the top-2 correlation."""
    samples = [p["metrics"] for p in photos]
    agg = aggregate(samples)
    levels = list(photos[0]["levels"])
    body, verdict = table(agg, levels, localised=False)
    body += "\n\n" + _errors(samples) + "\n\nPaired differences against AE on the same " \
        "photos (mean ± standard error):\n\n" + paired(samples, False)
    pick = ("logit", "margin", "versus", "dual", "ae×cam-margin", "ae×cam-versus", "gradcam")
    lines = ["| photo | top-1 (p) | top-2 (p) | " + " | ".join(f"`{n}`" for n in pick) + " |",
             "|" + "---|" * (3 + len(pick))]
    for p in photos:
        t1, t2 = p["top1"], p["top2"]
        m = p["metrics"]
        lines.append(f"| {p['photo']} | {t1[1]} ({t1[2]:.2f}) | {t2[1]} ({t2[2]:.2f}) | "
                     + " | ".join(_fmt(m[n]["top2"]) for n in pick) + " |")
    return body + "\n\nTop-2 correlation (signed Spearman between the maps of the two classes) "\
        "per photo:\n\n" + "\n".join(lines), verdict


def header(seconds: float) -> str:
    import onnx
    import onnxruntime
    import torch

    from benchmarks.bench_compile import cpu

    return (f"`.venv/bin/python -m benchmarks.contrast.run all` (cached parts reused), rendered "
            f"{datetime.date.today()}; {cpu()} ({os.cpu_count()} cores, shared with other "
            f"jobs); torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime "
            f"{onnxruntime.__version__}, numpy {np.__version__}; {seconds / 60:.0f} min of "
            "compute in the cached runs. All maps come from the independent torch reference "
            "(`tests/reference/ae_torch.py` walk, float32, batched; `tests/reference/"
            "contrast_torch.py` objectives), r = 2, residual Add rule.")


def write_report(cache: Path, out: Path, n: int, parts: int) -> str:
    """Render ``out`` from the cache; returns the text."""
    parts_md, verdicts, seconds = [], {}, 0.0
    for model in ("vgg", "resnet"):
        rec = load_scenes(cache, model, n, parts)
        if rec is None:
            parts_md.append(f"## {model}_scenes.onnx\n\nnot run yet (missing cached parts).\n")
            continue
        seconds += float(rec["seconds"])
        samples = [s["metrics"] for s in rec["samples"]]
        agg = aggregate(samples)
        body, verdicts[model] = table(agg, list(rec["levels"]), localised=True)
        body += "\n\n" + _errors(samples) + "\n\nPaired differences against AE on the " \
            "same scenes (mean ± standard error):\n\n" + paired(samples, True)
        parts_md.append(
            f"## {model}_scenes.onnx\n\n{len(rec['samples'])} correctly classified scenes of "
            f"0..{n - 1} (seed 2); {rec['layers']} weighted layers, so the levels are the top "
            f"{', '.join(map(str, rec['levels']))} (= all) layers; insertion/deletion "
            f"{rec['steps']} steps; a new randomisation draw (seed = batch number) for every "
            f"16 scenes.\n\n{body}\n")
    photos = load_photos(cache)
    if photos:
        seconds += sum(float(p["seconds"]) for p in photos)
        body, verdicts["lite0"] = photo_section(photos)
        parts_md.append(
            f"## EfficientNet-Lite0 (ImageNet weights), {len(photos)} photos\n\n"
            f"Means over the photos; insertion/deletion {photos[0]['steps']} steps; "
            f"{photos[0]['layers']} weighted layers (levels: top "
            f"{', '.join(map(str, photos[0]['levels']))}); randomisation seed = photo number; "
            "no masks, so no localisation columns.\n\n" + body + "\n")
    met = [v.name for v in VARIANTS
           if verdicts and all(not verdicts[m].get(v.name, ["?"]) for m in verdicts)]
    text = "\n".join([
        "# Contrastive AE variants (issue 23): research measurements", "", header(seconds), "",
        "## Variants", "", definitions(), "",
        "Goal of issue 23, checked per model against AE (`logit`) on the same samples: "
        "Spearman after re-drawing the classifier below 0.3 (signed **and** |R|), distractor "
        "energy below AE's, insertion ≥ 95 % and deletion ≤ 105 % of AE's, energy pointing not "
        f"lower than AE's by more than {ENERGY_SLACK} (scenes only: the photos have no masks). "
        "Columns `rand L`: Spearman between the map of the original model and of the model "
        "with its top L weighted layers re-drawn (each initializer from N(0, std²) of its "
        "own values), same target; `top-2 ρ`: signed Spearman between the maps of the top-1 "
        "and top-2 classes (information). `AE runs`: AE propagations per map (`+C`: times "
        "a Grad-CAM factor, no propagation). `(k†)`: k samples where a map was constant "
        "(e.g. empty after randomisation), so the Spearman is undefined and left out of the "
        "mean.", "", *parts_md,
        "## Verdict", "",
        "Variants meeting every criterion on every model measured: "
        + (", ".join(f"`{m}`" for m in met) if met else "**none**") + ".", ""])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text
