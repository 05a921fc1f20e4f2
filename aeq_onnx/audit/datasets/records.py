"""Records of annotated images shared by the dataset loaders, and the strict/lenient policy.

Every loader returns a :class:`LoadResult`: the usable images and one :class:`ItemError` per
bad item (missing image, malformed XML, mask of the wrong size, ...). With ``strict=True`` the
first bad item raises :class:`aeq_onnx.audit.errors.AnnotationError` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from aeq_onnx.audit.errors import AnnotationError
from aeq_onnx.audit.metrics._common import Box, boxes_to_mask

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectTruth:
    """One annotated object: dataset class name, model output indices, box and/or mask.

    ``box`` is ``(x0, y0, x1, y1)`` in pixel coordinates (0-based, ``x1``/``y1`` exclusive, see
    :mod:`aeq_onnx.audit.metrics._common`); ``mask`` a boolean ``(H, W)`` array.
    ``context``: annotation only (a distractor of the other cases, never a case itself).
    """

    class_name: str
    targets: tuple[int, ...]
    box: Box | None = None
    mask: np.ndarray | None = None
    difficult: bool = False
    context: bool = False

    def region(self, size: tuple[int, int]) -> np.ndarray:
        """Boolean ``(H, W)`` ground truth: the mask, else the box (``size`` is (W, H))."""
        if self.mask is not None:
            return self.mask
        boxes = [self.box] if self.box is not None else []
        return boxes_to_mask(boxes, (size[1], size[0]))


@dataclass(frozen=True)
class ImageAnnotation:
    """An image file, its size ``(width, height)`` and its annotated objects."""

    path: Path
    size: tuple[int, int]
    objects: list[ObjectTruth] = field(default_factory=list)

    def mask_for(self, target: int, include_difficult: bool = True) -> np.ndarray:
        """Union ``(H, W)`` of the objects whose targets include model output ``target``."""
        mask = np.zeros((self.size[1], self.size[0]), dtype=bool)
        for obj in self.objects:
            if target in obj.targets and (include_difficult or not obj.difficult):
                mask |= obj.region(self.size)
        return mask

    def targets(self) -> list[int]:
        """The sorted distinct model outputs of the objects."""
        return sorted({t for obj in self.objects for t in obj.targets})


@dataclass(frozen=True)
class ItemError:
    """A bad item: which one (a file or entry name) and why."""

    item: str
    message: str


@dataclass
class LoadResult:
    """Usable images and the per-item failures of one load."""

    items: list[ImageAnnotation] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


def collect(keys: Sequence[str], load: Callable[[str], ImageAnnotation],
            strict: bool) -> LoadResult:
    """Run ``load`` on every key; strict: re-raise the first AnnotationError, else record it."""
    result = LoadResult()
    for key in keys:
        try:
            result.items.append(load(key))
        except AnnotationError as error:
            if strict:
                raise
            result.errors.append(ItemError(error.item, error.reason))
    return result


def image_size(path: Path, item: str) -> tuple[int, int]:
    """``(width, height)`` of an image file (header only); a missing/unreadable file is an
    AnnotationError for ``item``."""
    if not path.is_file():
        raise AnnotationError(item, f"image file {path} not found")
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise AnnotationError(item, f"cannot read image {path}: {error}") from error


def find_image(directory: Path, stem: str, item: str) -> Path:
    """The file in ``directory`` named ``stem`` + an image extension."""
    for suffix in (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPG", ".JPEG", ".PNG"):
        if (directory / f"{stem}{suffix}").is_file():
            return directory / f"{stem}{suffix}"
    raise AnnotationError(item, f"no image named {stem}.* in {directory}")
