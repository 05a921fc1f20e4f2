"""Preprocessing presets: turn a photo into the tensor a classifier expects.

A :class:`Preset` says how pixels are scaled (``(x / 255 - mean) / std``), how the photo is
resized and cropped, and optionally the input size. The layout (NCHW or NHWC), the channel count
and, when fixed, the size are read from the model's input shape. Presets:

- ``imagenet``: resize the shorter side to ``int(size / 0.875)`` (256 for 224), centre crop,
  ImageNet mean/std (as torchvision's ``Resize(256)`` + ``CenterCrop(224)``);
- ``inception``: the same resize and crop, values in [-1, 1] (mean 0.5, std 0.5), 299 by default;
- ``unit``: resize the shorter side to ``size``, centre crop, values in [0, 1];
- a custom preset: any of the above with ``size``, ``mean``, ``std`` overridden.

A preset can be stored in an explainer's metadata (``aeq_onnx.preset``, JSON) with
:func:`store_preset`; :func:`preset_from_metadata` reads it back.

Size limit: a model file may declare any input size (a 725-byte model can declare 65536x65536,
which would make a photo resized for it take 22 GB). :func:`input_spec` refuses a model input
(or a chosen ``size``) over :data:`MAX_PIXELS` per image, from the declared shape, before any
photo is decoded; :func:`resize_and_crop` refuses a photo whose resized copy before the centre
crop would exceed :data:`RESIZE_FACTOR` times the limit (an extreme aspect ratio). Both take the
limit as ``max_pixels`` (``--max-pixels`` on the command line).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from aeq_onnx.errors import InputError

Layout = Literal["NCHW", "NHWC"]
PRESET_KEY = "aeq_onnx.preset"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Default largest model input per image, H x W: 4096 x 4096 (16.8 megapixels). ImageNet
#: classifiers take 224-600 pixels a side; one 4096^2 RGB float32 sample is already 201 MB
#: and its explainer holds several such tensors per layer.
MAX_PIXELS = 4096 * 4096
#: A photo resized to cover the model input may be at most this many times ``max_pixels``
#: before its centre crop (aspect ratios up to ~4:1 at the largest model input).
RESIZE_FACTOR = 4


@dataclass(frozen=True)
class Preset:
    """How to turn a photo into model input: resize, centre crop, scale and normalise."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_fraction: float = 0.875
    size: int | None = None  # None: the model's fixed size, else default_size
    default_size: int = 224

    def to_json(self) -> str:
        """The preset as a JSON string (for metadata)."""
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Preset:
        """A preset from :meth:`to_json`'s output; :class:`InputError` when malformed."""
        try:
            data = json.loads(text)
            return Preset(name=str(data["name"]), mean=tuple(float(v) for v in data["mean"]),
                          std=tuple(float(v) for v in data["std"]),
                          crop_fraction=float(data.get("crop_fraction", 0.875)),
                          size=None if data.get("size") is None else int(data["size"]),
                          default_size=int(data.get("default_size", 224)))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"invalid preset JSON {text!r}: {exc}") from None


PRESETS: dict[str, Preset] = {
    "imagenet": Preset("imagenet", IMAGENET_MEAN, IMAGENET_STD, 0.875),
    "inception": Preset("inception", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 0.875, default_size=299),
    "unit": Preset("unit", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0),
}


def _floats(value: str | tuple[float, ...] | list[float] | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return tuple(float(v) for v in value.replace(" ", "").split(",") if v)
        except ValueError:
            raise InputError(f"'{value}' is not a comma-separated list of numbers") from None
    return tuple(float(v) for v in value)


def get_preset(preset: str | Preset | None = "imagenet", *, size: int | None = None,
               mean: str | tuple[float, ...] | list[float] | None = None,
               std: str | tuple[float, ...] | list[float] | None = None) -> Preset:
    """A preset by name (``imagenet``, ``inception``, ``unit``), JSON or object, overridden by
    ``size``/``mean``/``std`` (a custom preset)."""
    if preset is None:
        preset = "imagenet"
    if isinstance(preset, str):
        if preset.endswith(".json") and Path(preset).is_file():
            preset = Path(preset).read_text(encoding="utf-8")
        if preset.lstrip().startswith("{"):
            base = Preset.from_json(preset)
        elif preset in PRESETS:
            base = PRESETS[preset]
        else:
            raise InputError(f"unknown preset '{preset}'; known: {', '.join(PRESETS)} "
                             "(or a JSON object)")
    else:
        base = preset
    m, s = _floats(mean), _floats(std)
    changes: dict[str, Any] = {}
    if size is not None:
        if size < 1:
            raise InputError(f"preset size must be positive, got {size}")
        changes["size"] = int(size)
    if m is not None:
        changes["mean"] = m
    if s is not None:
        if any(v == 0 for v in s):
            raise InputError("preset std must not contain 0")
        changes["std"] = s
    if changes:
        changes["name"] = base.name if base.name.startswith("custom") else f"custom:{base.name}"
        base = replace(base, **changes)
    return base


@dataclass(frozen=True)
class InputSpec:
    """What the model's image input looks like: layout, channels and (fixed or chosen) size."""

    layout: Layout
    channels: int
    height: int
    width: int
    max_pixels: int = MAX_PIXELS
    #: The input's numpy dtype: a float type, or an integer one for a model that takes raw
    #: pixels (uint8 photos, 0-255) and normalises inside its graph (docs/deployed.md).
    dtype: str = "float32"

    @property
    def raw_pixels(self) -> bool:
        """True when the model takes integer pixels: no scaling or normalisation outside it."""
        return np.issubdtype(np.dtype(self.dtype), np.integer)


def check_max_pixels(max_pixels: int) -> int:
    """``max_pixels`` when it is a positive integer; InputError otherwise."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise InputError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return max_pixels


def input_spec(shape: list[Any] | tuple[Any, ...], preset: Preset,
               max_pixels: int = MAX_PIXELS, dtype: str = "float32") -> InputSpec:
    """Layout, channels and size from a rank-4 model input shape (dims may be symbolic), and
    the input's ``dtype``; InputError when H x W exceeds ``max_pixels`` or the preset's
    mean/std do not fit the channels."""
    check_max_pixels(max_pixels)
    if len(shape) != 4:
        raise InputError(f"the model input has shape {list(shape)}; an image model needs rank 4")
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if dims[1] in (1, 3) and dims[3] not in (1, 3):
        layout: Layout = "NCHW"
    elif dims[3] in (1, 3) and dims[1] not in (1, 3):
        layout = "NHWC"
    elif dims[1] in (1, 3):
        layout = "NCHW"
    else:
        raise InputError(f"cannot tell the channel axis of input shape {list(shape)} "
                         "(1 or 3 channels expected at axis 1 or 3)")
    channels = int(dims[1] if layout == "NCHW" else dims[3])  # type: ignore[arg-type]
    h, w = (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])
    fallback = preset.size or preset.default_size
    if h is not None and w is not None and preset.size is not None and (h, w) != (
            preset.size, preset.size):
        raise InputError(f"preset size {preset.size} does not match the model's input "
                         f"{h}x{w}")
    height, width = h or fallback, w or fallback
    if height * width > max_pixels:
        what = "the model's input" if h is not None and w is not None else "the input size"
        raise InputError(f"{what} is {height}x{width} = {height * width:,} pixels per image, "
                         f"over the limit of {max_pixels:,}; raise it with --max-pixels "
                         "(max_pixels=) if this model really takes such images")
    for name, values in (("mean", preset.mean), ("std", preset.std)):
        if len(values) != 1 and len(values) < channels:
            raise InputError(f"the preset's {name} has {len(values)} values, the model input "
                             f"{channels} channels")
    return InputSpec(layout, channels, height, width, max_pixels, np.dtype(dtype).name)


def resize_and_crop(image: Any, height: int, width: int, crop_fraction: float,
                    max_pixels: int = MAX_PIXELS) -> Any:
    """Resize (bilinear) so the photo covers ``size / crop_fraction``, then centre crop.

    Matches torchvision's ``Resize(int(size / crop_fraction))`` + ``CenterCrop(size)`` on PIL
    images: the deciding side gets exactly ``int(size / crop_fraction)``, the other side
    ``int(...)`` of the scaled length, and the crop offset is ``int(round(excess / 2))``.
    InputError, before resizing, when the resized photo would hold more than
    ``RESIZE_FACTOR * max_pixels`` pixels.
    """
    from PIL import Image

    want_h, want_w = int(height / crop_fraction), int(width / crop_fraction)
    if want_h / image.height >= want_w / image.width:
        new_h, new_w = want_h, int(want_h * image.width / image.height)
    else:
        new_h, new_w = int(want_w * image.height / image.width), want_w
    new_h, new_w = max(new_h, height), max(new_w, width)
    if new_h * new_w > RESIZE_FACTOR * max_pixels:
        raise InputError(f"a {image.width}x{image.height} image would be resized to "
                         f"{new_w}x{new_h} for the centre crop, over {RESIZE_FACTOR} x the "
                         f"limit of {max_pixels:,} pixels (an extreme aspect ratio?)")
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left = round((new_w - width) / 2.0)
    top = round((new_h - height) / 2.0)
    return image.crop((left, top, left + width, top + height))


def preprocess(image: Any, preset: Preset, spec: InputSpec) -> tuple[np.ndarray, Any]:
    """One photo (PIL image) as a float32 sample in the model's layout (no batch axis), and the
    resized, cropped photo the model sees (for display). A model that takes integer pixels
    (``spec.raw_pixels``) gets them as they are, 0-255 in its dtype, with no normalisation."""
    from PIL import Image

    mode = "L" if spec.channels == 1 else "RGB"
    image = image.convert(mode)
    try:
        crop = resize_and_crop(image, spec.height, spec.width, preset.crop_fraction,
                               spec.max_pixels)
    except Image.DecompressionBombError as exc:
        raise InputError(f"refused as a decompression bomb: {exc}") from None
    if spec.raw_pixels:  # the model normalises inside its graph: feed it 0-255 pixels
        raw = np.asarray(crop, dtype=np.uint8)
        raw = raw[:, :, None] if raw.ndim == 2 else raw
        raw = raw.transpose(2, 0, 1) if spec.layout == "NCHW" else raw
        return np.ascontiguousarray(raw, dtype=spec.dtype), crop.convert("RGB")
    x = np.asarray(crop, dtype=np.float32) / np.float32(255.0)
    if x.ndim == 2:
        x = x[:, :, None]
    mean = np.asarray(preset.mean, np.float32)[: spec.channels]
    std = np.asarray(preset.std, np.float32)[: spec.channels]
    x = (x - mean) / std
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32), crop.convert("RGB")


def store_preset(model: onnx.ModelProto, preset: Preset | str) -> onnx.ModelProto:
    """Write ``preset`` into ``model``'s metadata (``aeq_onnx.preset``), in place; returns it."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    for prop in list(model.metadata_props):
        if prop.key == PRESET_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = PRESET_KEY, preset.to_json()
    return model


def preset_from_metadata(metadata: dict[str, str]) -> Preset | None:
    """The preset stored in an explainer's metadata (keys without the ``aeq_onnx.`` prefix)."""
    text = metadata.get("preset")
    return None if text is None else Preset.from_json(text)
