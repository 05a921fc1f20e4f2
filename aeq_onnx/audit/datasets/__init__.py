"""Ground truth of the evaluation datasets: PASCAL VOC XML, COCO instances JSON, plain user
boxes (JSON/CSV) and PNG masks, and class-mapping files (dataset class -> model outputs).

Every loader returns a :class:`LoadResult` (images + per-item errors); ``strict=True`` (the
default) raises :class:`aeq_onnx.audit.errors.AnnotationError` at the first bad item instead.
"""

from aeq_onnx.audit.datasets.coco import (
    decode_rle,
    load_coco,
    polygons_to_mask,
    rle_counts_from_string,
)
from aeq_onnx.audit.datasets.mapping import (
    Mapping,
    load_mapping,
    parse_mapping,
    parse_targets,
    targets_for,
)
from aeq_onnx.audit.datasets.records import ImageAnnotation, ItemError, LoadResult, ObjectTruth
from aeq_onnx.audit.datasets.user import load_boxes, load_masks
from aeq_onnx.audit.datasets.voc import load_voc, parse_voc_xml

__all__ = [
    "ImageAnnotation",
    "ItemError",
    "LoadResult",
    "Mapping",
    "ObjectTruth",
    "decode_rle",
    "load_boxes",
    "load_coco",
    "load_mapping",
    "load_masks",
    "load_voc",
    "parse_mapping",
    "parse_targets",
    "parse_voc_xml",
    "polygons_to_mask",
    "rle_counts_from_string",
    "targets_for",
]
