"""``--manifest FILE``: the images to audit listed in a table, CSV or Parquet.

Columns (a header row names them in a CSV; any order, unknown columns are ignored):

* ``path`` (required): the image file, relative to the manifest's folder unless absolute;
* ``label`` (optional): a dataset class name (turned into model outputs by ``--mapping``) or,
  without a mapping, a model output index (``207``); empty: the model's top-1;
* ``x0, y0, x1, y1`` (optional, all four or none): a box in pixels (0-based, ``x1``/``y1``
  exclusive, see :mod:`aeq_onnx.audit.metrics._common`);
* ``mask`` (optional): a PNG of the image's size, non-zero inside the object (relative like
  ``path``);
* ``explain`` (optional, default yes): ``0``, ``false`` or ``no`` makes the row's object
  ground truth only, not a case: a distractor for the distractor-energy metric of the image's
  other cases (:func:`aeq_onnx.audit.metrics.distractor_energy`).

Several rows of one image make several objects (one case per label). A row with neither box
nor mask gives a case without ground truth (faithfulness metrics only): use
:func:`manifest_cases` to turn the load into cases. Bad rows and images are
:class:`ItemError` s (or raise with ``strict=True``), naming the file and line.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from aeq_onnx.audit.datasets.mapping import Mapping, targets_for
from aeq_onnx.audit.datasets.records import (
    ImageAnnotation,
    ItemError,
    LoadResult,
    ObjectTruth,
    collect,
    image_size,
)
from aeq_onnx.audit.errors import AnnotationError

if TYPE_CHECKING:
    from aeq_onnx.audit.cases import Case

__all__ = ["load_manifest", "manifest_cases", "read_table"]

BOX = ("x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class Entry:
    """One checked manifest row."""

    item: str
    image: Path
    label: str
    box: tuple[float, float, float, float] | None
    mask: Path | None
    explain: bool = True


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    """A cell as text; integral floats (Parquet/pandas labels) without ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_table(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``.parquet`` (needs pyarrow) or CSV manifest as dicts; AnnotationError
    without a ``path`` column or without rows."""
    columns: list[str] = []
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                columns = list(reader.fieldnames or [])
    except ImportError as error:
        raise AnnotationError(str(path), "reading Parquet needs pyarrow") from error
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as error:
        raise AnnotationError(str(path), f"cannot read manifest: {error}") from error
    if rows:
        columns = list(rows[0])
    if "path" not in columns:
        raise AnnotationError(str(path), f"no 'path' column (columns: {sorted(columns)})")
    if not rows:
        raise AnnotationError(str(path), "the manifest has no rows")
    return rows


def _box(raw: dict[str, Any], item: str) -> tuple[float, float, float, float] | None:
    """The row's box, None without one; a partial or inverted box is an error."""
    given = [not _missing(raw.get(k)) for k in BOX]
    if not any(given):
        return None
    if not all(given):
        raise AnnotationError(item, "give all of x0, y0, x1, y1 or none")
    try:
        x0, y0, x1, y1 = (float(raw[k]) for k in BOX)
    except (TypeError, ValueError) as error:
        raise AnnotationError(item, f"box coordinates are not numbers: {error}") from error
    if not (x0 <= x1 and y0 <= y1):
        raise AnnotationError(item, f"bad box {(x0, y0, x1, y1)}: need x0 <= x1, y0 <= y1")
    return x0, y0, x1, y1


def _entry(raw: dict[str, Any], item: str, root: Path) -> Entry:
    """A raw row checked: image path, label, box and mask path."""
    if _missing(raw.get("path")):
        raise AnnotationError(item, "empty path")
    label = "" if _missing(raw.get("label")) else _text(raw["label"])
    mask = None if _missing(raw.get("mask")) else root / _text(raw["mask"])
    return Entry(item, root / _text(raw["path"]), label, _box(raw, item), mask,
                 _explain(raw.get("explain"), item))


def _explain(value: Any, item: str) -> bool:
    """The ``explain`` cell: empty/1/true/yes is a case, 0/false/no an object only."""
    if _missing(value):
        return True
    text = _text(value).lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise AnnotationError(item, f"explain must be 1/true/yes or 0/false/no, got {value!r}")


def _mask(entry: Entry, size: tuple[int, int]) -> np.ndarray | None:
    """The entry's mask as booleans; it must have the image's size."""
    if entry.mask is None:
        return None
    try:
        with Image.open(entry.mask) as png:
            mask = np.array(png.convert("L")) > 0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise AnnotationError(entry.item, f"cannot read mask {entry.mask}: {error}") from error
    if mask.shape != (size[1], size[0]):
        raise AnnotationError(entry.item, f"mask is {mask.shape[1]}x{mask.shape[0]}, the image "
                                          f"{size[0]}x{size[1]}")
    return mask


def _annotation(entries: list[Entry], mapping: Mapping | None) -> ImageAnnotation:
    """One image and the objects of its rows."""
    size = image_size(entries[0].image, entries[0].item)
    objects = [ObjectTruth(e.label, targets_for(e.label, mapping), e.box, _mask(e, size),
                           context=not e.explain) for e in entries]
    return ImageAnnotation(entries[0].image, size, objects)


def load_manifest(path: str | os.PathLike[str], mapping: Mapping | None = None,
                  strict: bool = True, root: str | os.PathLike[str] | None = None,
                  ) -> LoadResult:
    """The images and ground truth of a manifest (see the module docstring); relative paths
    are taken from ``root`` (default: the manifest's folder)."""
    source = Path(path)
    base = Path(root) if root is not None else source.parent
    by_image: dict[Path, list[Entry]] = defaultdict(list)
    result = LoadResult()
    for number, raw in enumerate(read_table(source), start=2):  # line 1: the header
        try:
            entry = _entry(raw, f"{source}:{number}", base)
            by_image[entry.image].append(entry)
        except AnnotationError as error:
            if strict:
                raise
            result.errors.append(ItemError(error.item, error.reason))
    keys = {str(k): k for k in by_image}
    loaded = collect(list(keys), lambda k: _annotation(by_image[keys[k]], mapping), strict)
    return LoadResult(loaded.items, result.errors + loaded.errors)


def manifest_cases(result: LoadResult) -> list[Case]:
    """The audit cases of a load: one per image and label; a label without box or mask has
    no ground truth (its case explains the label's outputs, or the top-1, without masks)."""
    from aeq_onnx.audit.cases import cases_for, unique_keys

    cases = []
    for item in result.items:
        for case in cases_for(item):
            regional = any(o.box is not None or o.mask is not None for o in item.objects
                           if o.class_name == case.class_name)
            cases.append(case if regional else replace(case, annotation=None))
    return unique_keys(cases)
