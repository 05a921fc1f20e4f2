"""COCO instance annotations (Lin et al. 2014): ``images``, ``annotations`` and
``categories`` of an ``instances_*.json`` file.

- ``bbox`` ``[x, y, w, h]`` becomes the box ``(x, y, x + w, y + h)``;
- ``segmentation`` as polygons (lists ``[x1, y1, x2, y2, ...]``) is rasterised with
  ``PIL.ImageDraw.polygon`` (outline included); as run-length encoding (RLE: ``{"size": [h, w],
  "counts": ...}``) it is decoded here, with ``counts`` a list (uncompressed) or the compressed
  string of the COCO API. RLE runs alternate 0s and 1s, starting with 0s, over the mask in
  column-major (Fortran) order. Compressed strings store each count in 5-bit groups (char
  ``48 + group``, bit 0x20: more groups follow, bit 0x10 of the last group: negative) and
  counts from index 3 on as the difference to the count two before.
- ``categories`` give the class names; the mapping turns them into model outputs.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from aeq_onnx.audit.datasets.mapping import Mapping, targets_for
from aeq_onnx.audit.datasets.records import (
    ImageAnnotation,
    LoadResult,
    ObjectTruth,
    collect,
    image_size,
)
from aeq_onnx.audit.errors import AnnotationError


def rle_counts_from_string(text: str) -> list[int]:
    """Decode the COCO API's compressed RLE string into run lengths."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise ValueError("truncated RLE string")
            group = ord(text[pos]) - 48
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos, shift = pos + 1, shift + 5
            if not more and group & 0x10:
                value |= -1 << shift
        counts.append(value + (counts[-2] if len(counts) > 2 else 0))
    return counts


def decode_rle(counts: list[int] | str, height: int, width: int) -> np.ndarray:
    """Boolean ``(height, width)`` mask of an RLE (list of counts or compressed string)."""
    runs = np.asarray(rle_counts_from_string(counts) if isinstance(counts, str) else counts,
                      dtype=np.int64)
    if runs.ndim != 1 or (runs < 0).any() or runs.sum() != height * width:
        raise ValueError(f"RLE counts sum to {runs.sum()}, not {height} x {width}")
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(width, height).T.copy()


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Boolean mask of the union of polygons ``[x1, y1, x2, y2, ...]`` (PIL rasterisation)."""
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        if len(polygon) < 6 or len(polygon) % 2:
            raise ValueError(f"a polygon needs >= 3 (x, y) pairs, got {len(polygon)} numbers")
        draw.polygon([(float(x), float(y)) for x, y in zip(polygon[::2], polygon[1::2],
                                                            strict=True)], fill=1, outline=1)
    return np.array(canvas, dtype=bool)


def _segmentation(seg: Any, height: int, width: int) -> np.ndarray | None:
    """Mask of a COCO ``segmentation`` (polygons or RLE), ``None`` when absent."""
    if not seg:
        return None
    if isinstance(seg, list):
        return polygons_to_mask(seg, height, width)
    if tuple(seg.get("size", ())) != (height, width):
        raise ValueError(f"RLE size {seg.get('size')} differs from the image's {(height, width)}")
    return decode_rle(seg["counts"], height, width)


def _object(ann: dict[str, Any], names: dict[int, str], size: tuple[int, int],
            mapping: Mapping | None) -> ObjectTruth:
    """One COCO annotation as an ObjectTruth (box and, with a segmentation, a mask)."""
    name = names[ann["category_id"]]
    x, y, w, h = (float(v) for v in ann["bbox"])
    mask = _segmentation(ann.get("segmentation"), size[1], size[0])
    return ObjectTruth(name, targets_for(name, mapping), (x, y, x + w, y + h), mask,
                       difficult=bool(ann.get("iscrowd", 0)))


def _image(info: dict[str, Any], anns: list[dict[str, Any]], names: dict[int, str],
           image_dir: Path, mapping: Mapping | None) -> ImageAnnotation:
    """One COCO image entry with its annotations."""
    if not isinstance(info, dict) or not isinstance(info.get("file_name"), str):
        raise AnnotationError(repr(info)[:80], "an image entry needs a 'file_name' string")
    item = info["file_name"]
    size = image_size(image_dir / item, item)
    if (info.get("width"), info.get("height")) not in ((None, None), size):
        raise AnnotationError(item, f"declared size {(info.get('width'), info.get('height'))}"
                                    f" differs from the image's {size}")
    try:
        objects = [_object(a, names, size, mapping) for a in anns]
    except (KeyError, TypeError, ValueError) as error:
        raise AnnotationError(item, f"bad annotation: {error!r}") from error
    return ImageAnnotation(image_dir / item, size, objects)


def _read(path: Path) -> dict[str, Any]:
    """The JSON object of an instances file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(str(path), f"cannot read COCO JSON: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise AnnotationError(str(path), "not a COCO instances file (no 'images' list)")
    return data


def load_coco(json_path: str | os.PathLike[str], image_dir: str | os.PathLike[str],
              mapping: Mapping | None = None, strict: bool = True) -> LoadResult:
    """Every image of a COCO instances file; see :mod:`.records` for ``strict``."""
    data = _read(Path(json_path))
    names = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in data.get("annotations", []):
        by_image[ann.get("image_id")].append(ann)
    infos = {str(i): info for i, info in enumerate(data["images"])}

    def load(key: str) -> ImageAnnotation:
        info = infos[key]
        anns = by_image[info.get("id")] if isinstance(info, dict) else []
        return _image(info, anns, names, Path(image_dir), mapping)
    return collect(list(infos), load, strict)
