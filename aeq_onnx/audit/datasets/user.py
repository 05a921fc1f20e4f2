"""Plain user ground truth: ``--boxes FILE`` and ``--masks DIR``.

Boxes file, JSON: a list of objects ``{"image": "a.jpg", "box": [x0, y0, x1, y1],
"class": "dog"}`` (``class`` optional); or CSV: rows ``image,x0,y0,x1,y1[,class]``, with an
optional header row whose first cell is ``image``; errors name the file line. Coordinates are
0-based pixel coordinates, ``x1``/``y1`` exclusive (see
:mod:`aeq_onnx.audit.metrics._common`); image names are relative to the image folder. Several
rows of one image make several objects.

Masks folder: one PNG per image, named like the image with ``.png`` (``cat.jpg`` ->
``cat.png``), non-zero pixels inside the object; it must have the image's size. Each mask
becomes one object of class ``class_name`` (default ``""``, no targets without a mapping).
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aeq_onnx.audit.datasets.mapping import Mapping, targets_for
from aeq_onnx.audit.datasets.records import (
    ImageAnnotation,
    ItemError,
    LoadResult,
    ObjectTruth,
    collect,
    find_image,
    image_size,
)
from aeq_onnx.audit.errors import AnnotationError

Row = tuple[str, tuple[float, float, float, float], str]


def _row(values: list[Any], item: str) -> Row:
    """``[image, x0, y0, x1, y1, class?]`` checked and converted."""
    if len(values) not in (5, 6):
        raise AnnotationError(item, f"want image,x0,y0,x1,y1[,class], got {values!r}")
    try:
        x0, y0, x1, y1 = (float(v) for v in values[1:5])
    except (TypeError, ValueError) as error:
        raise AnnotationError(item, f"box coordinates are not numbers: {values[1:5]!r}") from error
    if not (x0 <= x1 and y0 <= y1):
        raise AnnotationError(item, f"bad box {(x0, y0, x1, y1)}: need x0 <= x1, y0 <= y1")
    name = str(values[5]).strip() if len(values) == 6 and values[5] is not None else ""
    return str(values[0]).strip(), (x0, y0, x1, y1), name


def _entries(path: Path) -> list[tuple[str, Any]]:
    """(item label, raw row) pairs of a JSON or CSV boxes file."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            if not isinstance(data, list):
                raise AnnotationError(str(path), "a JSON boxes file must be a list")
            return [(f"{path}[{i}]", e) for i, e in enumerate(data)]
        rows = [(f"{path}:{n}", r) for n, r in enumerate(csv.reader(text.splitlines()), 1)
                if r]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        raise AnnotationError(str(path), f"cannot read boxes file: {error}") from error
    if rows and rows[0][1][0].strip().lower() == "image":
        rows = rows[1:]
    return rows


def _as_row(raw: Any, item: str) -> Row:
    """A JSON object or CSV row as a checked Row."""
    if isinstance(raw, dict):
        box = raw.get("box")
        if not isinstance(box, list) or "image" not in raw:
            raise AnnotationError(item, "want {'image': ..., 'box': [x0, y0, x1, y1]}")
        extra = [raw["class"]] if raw.get("class") is not None else []
        return _row([raw["image"], *box, *extra], item)
    return _row(list(raw) if isinstance(raw, list) else [raw], item)


def load_boxes(path: str | os.PathLike[str], image_dir: str | os.PathLike[str],
               mapping: Mapping | None = None, strict: bool = True) -> LoadResult:
    """Images and boxes of a JSON/CSV boxes file; a bad row or image is one ItemError."""
    rows: dict[str, list[Row]] = defaultdict(list)
    result = LoadResult()
    for item, raw in _entries(Path(path)):
        try:
            row = _as_row(raw, item)
            rows[row[0]].append(row)
        except AnnotationError as error:
            if strict:
                raise
            result.errors.append(ItemError(error.item, error.reason))

    def load(name: str) -> ImageAnnotation:
        size = image_size(Path(image_dir) / name, name)
        objects = [ObjectTruth(c, targets_for(c, mapping), box) for _, box, c in rows[name]]
        return ImageAnnotation(Path(image_dir) / name, size, objects)
    loaded = collect(list(rows), load, strict)
    return LoadResult(loaded.items, result.errors + loaded.errors)


def _mask_item(mask_path: Path, image_dir: Path, class_name: str,
               mapping: Mapping | None) -> ImageAnnotation:
    """One PNG mask and the image of the same stem (sizes must agree)."""
    item = str(mask_path)
    image = find_image(image_dir, mask_path.stem, item)
    size = image_size(image, item)
    try:
        with Image.open(mask_path) as png:
            mask = np.array(png.convert("L")) > 0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise AnnotationError(item, f"cannot read mask: {error}") from error
    if mask.shape != (size[1], size[0]):
        raise AnnotationError(item, f"mask is {mask.shape[1]}x{mask.shape[0]}, the image "
                                    f"{size[0]}x{size[1]}")
    return ImageAnnotation(image, size, [ObjectTruth(class_name, targets_for(class_name,
                                                                             mapping), None, mask)])


def load_masks(mask_dir: str | os.PathLike[str], image_dir: str | os.PathLike[str],
               class_name: str = "", mapping: Mapping | None = None,
               strict: bool = True) -> LoadResult:
    """Every ``*.png`` mask of ``mask_dir`` with its image; see the module docstring."""
    masks = Path(mask_dir)
    if not masks.is_dir():
        raise AnnotationError(str(masks), "mask folder not found")
    keys = sorted(p.name for p in masks.glob("*.png"))
    return collect(keys, lambda k: _mask_item(masks / k, Path(image_dir), class_name, mapping),
                   strict)
