"""PASCAL VOC annotations (Everingham et al. 2010): ``Annotations/<id>.xml`` next to
``JPEGImages/<filename>`` (the VOC 2007 test layout).

Each ``<object>`` has ``<name>``, ``<difficult>`` (0/1, optional) and ``<bndbox>`` with
``<xmin> <ymin> <xmax> <ymax>``: 1-based, inclusive pixel indices. They become 0-based
half-open boxes ``(xmin - 1, ymin - 1, xmax, ymax)``. The image must exist and, when the XML
gives ``<size>``, have that width and height.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from aeq_onnx.audit.datasets.mapping import Mapping, targets_for
from aeq_onnx.audit.datasets.records import (
    ImageAnnotation,
    LoadResult,
    ObjectTruth,
    collect,
    image_size,
)
from aeq_onnx.audit.errors import AnnotationError


def _number(element: ET.Element, tag: str, item: str) -> float:
    """The number in child ``tag`` of ``element``."""
    text = element.findtext(tag)
    try:
        return float(text) if text is not None else float("nan")
    except ValueError as error:
        raise AnnotationError(item, f"<{tag}> is not a number: {text!r}") from error


def _object(element: ET.Element, item: str, mapping: Mapping | None) -> ObjectTruth:
    """One ``<object>`` as an ObjectTruth with a 0-based half-open box."""
    name = (element.findtext("name") or "").strip()
    box = element.find("bndbox")
    if not name or box is None:
        raise AnnotationError(item, "an <object> lacks <name> or <bndbox>")
    x0, y0, x1, y1 = (_number(box, t, item) for t in ("xmin", "ymin", "xmax", "ymax"))
    if not (x0 <= x1 and y0 <= y1):
        raise AnnotationError(item, f"bad box of {name!r}: {(x0, y0, x1, y1)}")
    difficult = (element.findtext("difficult") or "0").strip() == "1"
    return ObjectTruth(name, targets_for(name, mapping), (x0 - 1, y0 - 1, x1, y1),
                       difficult=difficult)


def parse_voc_xml(path: Path, image_dir: Path, mapping: Mapping | None) -> ImageAnnotation:
    """One VOC XML file and its image (which must exist and match ``<size>``)."""
    item = str(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as error:
        raise AnnotationError(item, f"malformed XML: {error}") from error
    filename = (root.findtext("filename") or f"{path.stem}.jpg").strip()
    image = image_dir / filename
    size = image_size(image, item)
    declared = root.find("size")
    if declared is not None:
        wanted = (_number(declared, "width", item), _number(declared, "height", item))
        if wanted != (float(size[0]), float(size[1])):
            raise AnnotationError(item, f"<size> {wanted} differs from the image's {size}")
    objects = [_object(o, item, mapping) for o in root.iter("object")]
    return ImageAnnotation(image, size, objects)


def load_voc(root: str | os.PathLike[str], mapping: Mapping | None = None,
             ids: list[str] | None = None, strict: bool = True) -> LoadResult:
    """All (or the listed ``ids``) images of a VOC folder; see :mod:`.records` for strict."""
    base = Path(root)
    annotations, images = base / "Annotations", base / "JPEGImages"
    if not annotations.is_dir():
        raise AnnotationError(str(base), "no Annotations/ folder")
    keys = ids if ids is not None else sorted(p.stem for p in annotations.glob("*.xml"))
    return collect(keys, lambda k: parse_voc_xml(annotations / f"{k}.xml", images, mapping),
                   strict)
