"""Aggregate audit rows into the methods x metrics table, the mean curves and the sanity
trajectories (means over cases; metrics a case does not allow are left out of its mean).

Every aggregate is independent of the order the rows come in (which is the order the cases
completed in: it differs between the local engine, Ray with any number of workers and a resumed
run): the rows are put in canonical order (:func:`store.canonical`) and every mean is
``math.fsum(values) / n``, the correctly rounded sum, so the same rows give the same bits."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aeq_onnx.audit.store import Row, canonical

#: Metric columns in report order, with a header and whether higher is better (None: neither,
#: information only, never bold).
COLUMNS: tuple[tuple[str, str, bool | None], ...] = (
    ("pointing", "pointing game ↑", True),
    ("energy", "energy pointing ↑", True),
    ("outside_inside", "outside/inside ↓", False),
    ("iou", "mIoU ↑", True),
    ("distractor_energy", "distractor energy ↓", False),
    ("class_sensitivity", "top-2 Spearman (info)", None),
    ("insertion_blur", "insertion AUC (blur) ↑", True),
    ("deletion_blur", "deletion AUC (blur) ↓", False),
    ("insertion_zero", "insertion AUC (zero) ↑", True),
    ("deletion_zero", "deletion AUC (zero) ↓", False),
    ("sanity_ssim", "SSIM after full randomisation ↓", False),
    ("sanity_spearman_abs", "Spearman of |R| after full randomisation ↓", False),
    ("rand_spearman", "Spearman, classifier re-drawn ↓", False),
    ("rand_spearman_abs", "Spearman of |R|, classifier re-drawn ↓", False),
)
#: The randomisation level of the ``rand_`` columns: the classifier's weight tensor alone.
CLASSIFIER_LEVEL = "1"


def mean(values: Sequence[float | None]) -> float | None:
    """``fsum(v) / n`` over the values that are not None (None when there are none): exactly
    the same float for the same values in any order."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    try:
        return math.fsum(kept) / len(kept)
    except OverflowError:  # finite values whose sum leaves the float range
        return math.fsum(v / len(kept) for v in kept)
    except ValueError:  # inf and -inf
        return math.nan


def table(rows: Sequence[Row], sanity: Sequence[Row], methods: Sequence[str],
          randomisation: Sequence[Row] = ()) -> dict[str, dict[str, Any]]:
    """``{method: {metric: mean, "cases": n}}`` for every column some row has."""
    out: dict[str, dict[str, Any]] = {}
    rows, last = canonical(rows), canonical(last_step_rows(sanity))
    first = canonical(r for r in randomisation if str(r["step"]) == CLASSIFIER_LEVEL)
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        entry: dict[str, Any] = {"cases": len(mine)}
        for key, _, _ in COLUMNS:
            if key.startswith("sanity_"):
                values = [r[key[len("sanity_"):]] for r in last if r["method"] == method]
            elif key.startswith("rand_"):
                values = [r[key[len("rand_"):]] for r in first if r["method"] == method]
            else:
                values = [r[key] for r in mine if key in r]
            if values:
                entry[key] = mean(values)
        out[method] = entry
    return out


def last_step_rows(sanity: Sequence[Row]) -> list[Row]:
    """Sanity rows of the final step (every layer randomised)."""
    if not sanity:
        return []
    final = max(int(r["step"]) for r in sanity)
    return [r for r in sanity if int(r["step"]) == final]


def mean_curves(rows: Sequence[Row], methods: Sequence[str]) -> dict[str, dict[str, list]]:
    """``{curve name: {method: mean curve}}`` over the cases (point by point, to 6 decimals)."""
    out: dict[str, dict[str, list]] = defaultdict(dict)
    rows = canonical(rows)
    for method in methods:
        by_name: dict[str, list[list[float]]] = defaultdict(list)
        for r in rows:
            if r["method"] == method:
                for name, curve in r.get("curves", {}).items():
                    by_name[name].append(curve)
        for name, curves in sorted(by_name.items()):
            out[name][method] = [round(mean(point) or 0.0, 6)
                                 for point in zip(*curves, strict=True)]
    return {name: out[name] for name in sorted(out)}


def sanity_curves(sanity: Sequence[Row], methods: Sequence[str]) -> dict[str, list[dict]]:
    """``{method: [{step, layer, ssim, spearman, spearman_abs}]}`` means per step."""
    out: dict[str, list[dict]] = {}
    sanity = canonical(sanity)
    for method in methods:
        steps: dict[int, list[Row]] = defaultdict(list)
        for r in sanity:
            if r["method"] == method:
                steps[int(r["step"])].append(r)
        out[method] = [{"step": s, "layer": group[0]["layer"],
                        **{k: mean([g[k] for g in group])
                           for k in ("ssim", "spearman", "spearman_abs")}}
                       for s, group in sorted(steps.items())]
    return out


def randomisation_table(rows: Sequence[Row], methods: Sequence[str]) -> dict[str, list[dict]]:
    """``{method: [{tensors, level, cases, spearman, spearman_abs}]}``: means per level of the
    weight-randomisation check, fewest tensors re-drawn first."""
    out: dict[str, list[dict]] = {}
    rows = canonical(rows)
    for method in methods:
        levels: dict[int, list[Row]] = defaultdict(list)
        for r in rows:
            if r["method"] == method:
                levels[int(r["step"])].append(r)
        out[method] = [{"tensors": k, "level": group[0]["level"], "cases": len(group),
                        **{m: mean([g[m] for g in group]) for m in ("spearman", "spearman_abs")}}
                       for k, group in sorted(levels.items())]
    return out


def best(table_: dict[str, dict[str, Any]], key: str, higher: bool | None) -> set[str]:
    """The methods with the best mean of ``key`` (all of them on a tie, at 3 decimals; for the
    sanity and randomisation columns the smallest magnitude; none for an information column,
    ``higher`` None)."""
    if higher is None:
        return set()
    magnitude = key.startswith(("sanity_", "rand_"))  # after randomisation: nearest 0 is best
    scored = {m: round(abs(v[key]) if magnitude else v[key], 3)
              for m, v in table_.items() if v.get(key) is not None}
    if not scored:
        return set()
    top = (max if higher else min)(scored.values())
    return {m for m, v in scored.items() if v == top}
