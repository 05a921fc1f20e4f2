"""What an audit explains: one *case* per image and ground-truth class (or per image without
ground truth), each preprocessed like ``aeq explain`` does and with its mask carried through the
same resize and centre crop.

Ground truth comes from the loaders of :mod:`aeq_onnx.audit.datasets` (VOC XML, COCO JSON, a boxes
file or a folder of PNG masks). A class may map to several model outputs (``dog: 151-268``);
the case then explains the best-scoring of them, as TorchRay's pointing-game benchmark does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aeq_onnx.audit.datasets.records import ImageAnnotation
from aeq_onnx.errors import InputError
from aeq_onnx.render.photos import load_image
from aeq_onnx.render.presets import InputSpec, Preset, preprocess, resize_and_crop


@dataclass(frozen=True)
class Case:
    """One image and class to explain; ``candidates`` empty: the model's top-1."""

    key: str
    path: Path
    class_name: str
    candidates: tuple[int, ...]
    annotation: ImageAnnotation | None = None

    def original_mask(self) -> np.ndarray | None:
        """The class's ground truth at the photo's own size (union of its objects)."""
        if self.annotation is None:
            return None
        size = self.annotation.size
        mask = np.zeros((size[1], size[0]), dtype=bool)
        for obj in self.annotation.objects:
            if obj.class_name == self.class_name:
                mask |= obj.region(size)
        return mask

    def original_distractors(self) -> np.ndarray | None:
        """The union of the objects of *other* classes (other name, no shared model output)
        at the photo's own size, the class's own region removed; None without any."""
        if self.annotation is None:
            return None
        size, own = self.annotation.size, set(self.candidates)
        others = [o for o in self.annotation.objects
                  if o.class_name != self.class_name and not own & set(o.targets)]
        if not others:
            return None
        mask = np.zeros((size[1], size[0]), dtype=bool)
        for obj in others:
            mask |= obj.region(size)
        target = self.original_mask()
        return mask & ~target if target is not None else mask


@dataclass
class Prepared:
    """A case ready to run: the model-layout sample, the mask and the other classes' objects
    (``distractors``; None without any in view) as the model sees them."""

    case: Case
    sample: np.ndarray
    mask: np.ndarray | None
    distractors: np.ndarray | None = None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]


def cases_for(annotation: ImageAnnotation) -> list[Case]:
    """One case per annotated class of the image (``context`` objects are none); a class
    without model outputs (a mask with no class, a class missing from the mapping) is
    explained for the model's top-1."""
    by_class: dict[str, set[int]] = {}
    for obj in annotation.objects:
        if not obj.context:
            by_class.setdefault(obj.class_name, set()).update(obj.targets)
    stem = _slug(annotation.path.stem)
    return [Case(f"{stem}.{_slug(name)}" if name else stem, annotation.path, name,
                 tuple(sorted(targets)), annotation)
            for name, targets in sorted(by_class.items())]


def plain_cases(paths: Sequence[Path]) -> list[Case]:
    """Images without ground truth: one top-1 case each."""
    return [Case(_slug(p.stem), p, "", ()) for p in paths]


def unique_keys(cases: list[Case]) -> list[Case]:
    """Make case keys unique (two photos with one stem in different folders)."""
    seen: dict[str, int] = {}
    out = []
    for case in cases:
        n = seen.get(case.key, 0)
        seen[case.key] = n + 1
        out.append(case if n == 0 else Case(f"{case.key}~{n}", case.path, case.class_name,
                                             case.candidates, case.annotation))
    return out


def crop_mask(mask: np.ndarray, spec: InputSpec, preset: Preset) -> np.ndarray:
    """The mask through the photo's resize (bilinear, kept where >= 1/2) and centre crop."""
    from PIL import Image

    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    crop = resize_and_crop(image, spec.height, spec.width, preset.crop_fraction,
                           spec.max_pixels)
    return np.asarray(crop) >= 128


def prepare(case: Case, spec: InputSpec, preset: Preset) -> Prepared:
    """Read and preprocess the photo; InputError when it cannot be read or the mask is empty
    after cropping."""
    photo = load_image(case.path)
    sample, _ = preprocess(photo, preset, spec)
    original = case.original_mask()
    mask, distractors = None, None
    if original is not None:
        if original.shape != (photo.height, photo.width):
            raise InputError(f"mask {original.shape[::-1]} does not match the image "
                             f"{photo.width}x{photo.height}")
        mask = crop_mask(original, spec, preset)
        if not mask.any():
            raise InputError(f"the {case.class_name} region falls outside the centre crop")
        others = case.original_distractors()
        if others is not None:
            distractors = crop_mask(others, spec, preset) & ~mask
            distractors = distractors if distractors.any() else None
    return Prepared(case, sample, mask, distractors)


def choose_targets(logits: np.ndarray, cases: Sequence[Case]) -> np.ndarray:
    """Per case: the best-scoring of its candidate outputs, or the top-1 without any."""
    targets = np.empty(len(cases), np.int64)
    for i, case in enumerate(cases):
        if case.candidates:
            index = [t for t in case.candidates if t < logits.shape[1]]
            if not index:
                raise InputError(f"class {case.class_name} maps to outputs "
                                 f"{case.candidates[:3]}… beyond the model's {logits.shape[1]}")
            targets[i] = index[int(np.argmax(logits[i, index]))]
        else:
            targets[i] = int(np.argmax(logits[i]))
    return targets
