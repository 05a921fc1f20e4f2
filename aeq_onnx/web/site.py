"""Write the static explainer page of ``aeq web``: the explainer, onnxruntime-web and the page.

The site needs no server-side code and loads nothing from outside its folder::

    SITE/index.html, app.js, aeq-core.js, style.css   the page (package data, aeq_onnx/web/static)
    SITE/config.js                                    class names, file name and size limits
    SITE/explainer.onnx                               the explainer, with its preset in metadata
    SITE/ort/                                         onnxruntime-web (pinned), WASM and WebGPU

onnxruntime-web comes from npm (``web/package-lock.json``, installed by the Makefile into
``web/node_modules``) or from ``ort_dir``; its version must be :data:`ORT_WEB_VERSION`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import onnx

from aeq_onnx.compile.assemble import explainer_metadata
from aeq_onnx.errors import InputError
from aeq_onnx.render.imaging import load_labels
from aeq_onnx.render.presets import (
    PRESET_KEY,
    Preset,
    get_preset,
    input_spec,
    preset_from_metadata,
    store_preset,
)
from aeq_onnx.run.saving import atomic_output, check_output, make_folder

ORT_WEB_VERSION = "1.30.0"
#: The largest explainer file the page opens (bytes). WebAssembly (wasm32) has 4 GiB of memory
#: for the model bytes, the session's copy of the weights and every intermediate tensor.
MAX_MODEL_BYTES = 1 << 30
PERCENTILE = 99.5
STATIC = ("index.html", "app.js", "aeq-core.js", "style.css")
WASM_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
WEBGPU_FILES = ("ort.webgpu.min.js", "ort-wasm-simd-threaded.asyncify.mjs",
                "ort-wasm-simd-threaded.asyncify.wasm")
MODEL_NAME = "explainer.onnx"
REPO_WEB = Path(__file__).resolve().parents[2] / "web"


@dataclass
class Site:
    """What :func:`write_site` wrote."""

    root: Path
    preset: Preset
    layout: str
    classes: int
    model_bytes: int
    files: list[Path] = field(default_factory=list)

    @property
    def index(self) -> Path:
        """The page to open (through a server: see :mod:`aeq_onnx.web.serve`)."""
        return self.root / "index.html"


def find_ort_web(ort_dir: str | os.PathLike[str] | None = None) -> Path:
    """The ``dist`` folder of onnxruntime-web :data:`ORT_WEB_VERSION`: from ``ort_dir`` (the
    package folder or its ``dist``), else ``$AEQ_ORT_WEB``, else this checkout's
    ``web/node_modules``, else ``./node_modules``; :class:`InputError` saying how to install."""
    given = ort_dir if ort_dir is not None else os.environ.get("AEQ_ORT_WEB")
    candidates = [Path(given)] if given else [REPO_WEB / "node_modules" / "onnxruntime-web",
                                              Path.cwd() / "node_modules" / "onnxruntime-web"]
    for path in candidates:
        package = path.parent if path.name == "dist" else path
        manifest = package / "package.json"
        if not manifest.is_file():
            continue
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        if version != ORT_WEB_VERSION:
            raise InputError(f"{package} holds onnxruntime-web {version}; aeq web needs exactly "
                             f"{ORT_WEB_VERSION} (npm ci in web/, or npm install "
                             f"onnxruntime-web@{ORT_WEB_VERSION})")
        missing = [f for f in WASM_FILES + WEBGPU_FILES if not (package / "dist" / f).is_file()]
        if missing:
            raise InputError(f"{package / 'dist'} lacks {', '.join(missing)}")
        return package / "dist"
    where = ", ".join(str(p) for p in candidates)
    raise InputError(f"onnxruntime-web {ORT_WEB_VERSION} not found (looked in {where}). In a "
                     "checkout run `make web` (npm ci --ignore-scripts in web/); elsewhere `npm "
                     f"install onnxruntime-web@{ORT_WEB_VERSION}` and pass --ort-dir "
                     "node_modules/onnxruntime-web")


def _load(model: str | os.PathLike[str] | bytes | onnx.ModelProto, max_bytes: int,
          isolate: bool | None) -> tuple[onnx.ModelProto, bytes | None]:
    """The explainer (compiled when ``model`` is a classifier) and its file's bytes when they
    can be copied unchanged."""
    from aeq_onnx.run.runtime import explainer_model

    if isinstance(model, str | os.PathLike) and Path(model).is_file():
        path = Path(model)  # anything else gets the loader's own one-line error
        size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(
            path.name + ".data"))
        if size > max_bytes:
            raise InputError(_too_large(size, max_bytes))
    proto, as_loaded = explainer_model(model, isolate=isolate)
    raw = Path(model).read_bytes() if as_loaded and isinstance(model, str | os.PathLike) else None
    if raw is not None and any(t.data_location == onnx.TensorProto.EXTERNAL
                               for t in proto.graph.initializer):
        raw = None
    return proto, raw


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


def _too_large(size: int, limit: int) -> str:
    return (f"the explainer is {_size(size)}, too large for the browser (limit "
            f"{_size(limit)}: WebAssembly has 4 GiB for the model, its weights and every "
            "intermediate tensor); run it with onnxruntime in Python, Node, C++, C# or Java")


def _data_input(proto: onnx.ModelProto) -> onnx.ValueInfoProto:
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    wanted = explainer_metadata(proto).get("input")
    for info in inputs:
        if info.name == wanted or (wanted is None and info.name != "target"):
            return info
    raise InputError("the explainer has no data input (explainer contract)")


def _dims(info: onnx.ValueInfoProto) -> list[Any]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in info.type.tensor_type.shape.dim]


def write_site(model: str | os.PathLike[str] | bytes | onnx.ModelProto,
               out: str | os.PathLike[str], *, labels: str | os.PathLike[str] | None = None,
               preset: str | Preset | None = None, webgpu: bool = True,
               ort_dir: str | os.PathLike[str] | None = None,
               max_bytes: int = MAX_MODEL_BYTES,
               examples: list[str | os.PathLike[str]] | None = None,
               isolate: bool | None = None) -> Site:
    """Write the page for ``model`` (an explainer, or a classifier compiled here with AE's
    defaults) into ``out``. The preset is ``preset``, else the one stored in the explainer, else
    ``imagenet``; it is stored in the site's copy of the explainer, which the page reads.
    ``labels``: class names, one per line (default: ImageNet's for 1000 classes). ``webgpu``
    False leaves the WebGPU runtime out (27 MB smaller; WebAssembly only). ``examples``: photos
    copied into ``SITE/examples/`` that the page explains as soon as it opens. ``isolate``
    runs the model checks in a limited child process (:func:`aeq_onnx.load.load_model`)."""
    dist = find_ort_web(ort_dir)
    proto, raw = _load(model, max_bytes, isolate)
    stored = preset_from_metadata({p.key[len("aeq_onnx."):]: p.value
                                   for p in proto.metadata_props if p.key == PRESET_KEY})
    resolved = get_preset(preset if preset is not None else stored)
    spec = input_spec(_dims(_data_input(proto)), resolved)
    logits = next((o for o in proto.graph.output if o.name == "logits"), None)
    if logits is None:
        raise InputError("the explainer has no 'logits' output (explainer contract)")
    k = _dims(logits)[1] if len(_dims(logits)) == 2 else None
    if not isinstance(k, int) or k < 1:
        raise InputError("the explainer's logits have no fixed class count")
    names = load_labels(labels, k)
    if raw is None or stored != resolved:
        if isinstance(model, onnx.ModelProto) and proto is model:
            proto = onnx.ModelProto()
            proto.CopyFrom(model)  # the caller's model stays as it was
        raw = store_preset(proto, resolved).SerializeToString()
    if len(raw) > max_bytes:
        raise InputError(_too_large(len(raw), max_bytes))
    root = check_output(out, folder=True, what="site folder",
                        inputs=[model, labels, *(examples or [])])
    missing = [str(p) for p in examples or [] if not Path(p).is_file()]
    if missing:
        raise InputError(f"no such example photo: '{missing[0]}'")
    site = Site(root, resolved, spec.layout, k, len(raw))
    created = not root.exists()
    try:
        make_folder(root / "ort")
        _write_files(site, raw, dist, webgpu, examples or [], model, names, max_bytes)
    except BaseException as exc:  # no half-written site: remove what this call wrote
        for path in site.files:
            path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(root, ignore_errors=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the site '{root}': {exc.strerror or exc}") from None
        raise
    return site


def _write_files(site: Site, raw: bytes, dist: Path, webgpu: bool,
                 examples: list[str | os.PathLike[str]],
                 model: str | os.PathLike[str] | bytes | onnx.ModelProto,
                 names: list[str], max_bytes: int) -> None:
    """Write the page, the runtime, the explainer, the examples and ``config.js``."""
    root = site.root
    static = resources.files("aeq_onnx.web").joinpath("static")
    for name in STATIC:
        site.files.append(_write(root / name, static.joinpath(name).read_bytes()))
    for name in WASM_FILES + (WEBGPU_FILES if webgpu else ()):
        site.files.append(Path(shutil.copyfile(dist / name, root / "ort" / name)))
    if not webgpu:
        for name in WEBGPU_FILES:
            (root / "ort" / name).unlink(missing_ok=True)
    site.files.append(_write(root / "ort" / "NOTICE.txt", (
        f"onnxruntime-web {ORT_WEB_VERSION} (npm), MIT License, Copyright (c) Microsoft "
        "Corporation. https://github.com/microsoft/onnxruntime\n").encode()))
    site.files.append(_write(root / MODEL_NAME, raw))
    shown = _copy_examples(examples, root / "examples")
    site.files += [root / "examples" / name for name in shown]
    source = Path(model).name if isinstance(model, str | os.PathLike) else MODEL_NAME
    config = {"model": MODEL_NAME, "name": source, "modelBytes": len(raw),
              "maxBytes": max_bytes, "labels": names, "ortVersion": ORT_WEB_VERSION,
              "webgpu": webgpu, "percentile": PERCENTILE,
              "examples": [f"examples/{name}" for name in shown]}
    text = json.dumps(config, ensure_ascii=True).replace("</", "<\\/")
    site.files.append(_write(root / "config.js", f"window.AEQ_CONFIG = {text};\n".encode()))


def _copy_examples(photos: list[str | os.PathLike[str]], folder: Path) -> list[str]:
    """Copy the example photos (unique, URL-safe names); the names, in order."""
    names: list[str] = []
    for photo in map(Path, photos):
        if not photo.is_file():
            raise InputError(f"no such example photo: '{photo}'")
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", photo.stem).strip("-.") or "photo"
        name, n = f"{stem}{photo.suffix.lower()}", 1
        while name in names:
            n += 1
            name = f"{stem}-{n}{photo.suffix.lower()}"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(photo, folder / name)
        names.append(name)
    return names


def _write(path: Path, data: bytes) -> Path:
    """Write ``data`` whole or not at all (a temporary file renamed onto ``path``)."""
    with atomic_output(path) as partial:
        partial.write_bytes(data)
    return path
