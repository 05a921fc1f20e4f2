"""Reading what ``aeq explain`` and ``aeq audit`` are given: photo files and folders, decoded
photos (decompression bombs refused one by one) and class names."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from aeq_onnx.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")


def _inside(path: Path, folder: Path | None) -> bool:
    """True when ``path`` lies in ``folder`` (or is it)."""
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def collect_images(paths: Sequence[str | os.PathLike[str]],
                   exclude: str | os.PathLike[str] | None = None,
                   ) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named in ``paths`` (folders: their image files, recursively, sorted) and the
    paths that cannot be used ``(path, message)``. Files found in folders under ``exclude``
    (the output folder: the heatmaps of an earlier run) are skipped."""
    skip = None if exclude is None else Path(exclude)
    files: list[Path] = []
    failures: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                           and not _inside(p, skip))
            if not found:
                failures.append((str(path), "folder holds no image files"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            failures.append((str(path), "no such file or folder"))
    return files, failures


def nothing_usable(failures: Sequence[tuple[str, str]], what: str) -> InputError:
    """The error for a command left with no image at all: names the first bad path."""
    first = f": {failures[0][0]}: {failures[0][1]}" if failures else ""
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return InputError(f"nothing to {what}{first}{more}")


def load_image(path: str | os.PathLike[str]) -> Any:
    """The decoded photo (PIL image); :class:`InputError` when it cannot be read or is a
    decompression bomb (over twice Pillow's ``Image.MAX_IMAGE_PIXELS``, 179 megapixels by
    default: refused from the header, before decoding)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)  # a copy, upright as the camera held it
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read '{path}' as an image: {exc}") from None


def load_labels(labels: str | os.PathLike[str] | Sequence[str] | None,
                classes: int) -> list[str]:
    """Class names: from a file (one per line) or a list; ImageNet's for 1000 classes; else
    ``class K``."""
    if labels is None:
        if classes == 1000:
            text = resources.files("aeq_onnx").joinpath("data/imagenet_classes.txt").read_text(
                encoding="utf-8")
            return [line.strip() for line in text.splitlines() if line.strip()]
        return [f"class {k}" for k in range(classes)]
    source = "labels given"
    if isinstance(labels, (str, os.PathLike)):
        try:
            text = Path(labels).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise InputError(f"cannot read labels file '{labels}': {reason}") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
        source = f"labels in '{labels}' (one per non-empty line)"
    else:
        names = [str(n) for n in labels]
    if len(names) != classes:
        raise InputError(f"{len(names)} {source}, the model has {classes} classes")
    return names


def class_by_name(name: str, labels: Sequence[str]) -> int:
    """The index of class ``name`` (case-insensitive); :class:`InputError` naming close ones."""
    wanted = name.strip().lower()
    for k, label in enumerate(labels):
        if label.lower() == wanted:
            return k
    close = difflib.get_close_matches(name, list(labels), n=5)
    hint = f"; close: {', '.join(close)}" if close else ""
    raise InputError(f"no class named '{name}'{hint}")
