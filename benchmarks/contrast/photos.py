"""Photo study: EfficientNet-Lite0 with its real ImageNet weights on the bundled photos
(``fixtures/images/``) and matplotlib's ``grace_hopper.jpg`` (a U.S. Navy photograph, public
domain; read from the installed matplotlib package, not bundled)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper

from aeq_onnx.audit.metrics import softmax_predictor
from benchmarks.contrast.study import NAMES, randomised_nets, sample_metrics, study_batch

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "fixtures" / "images"
LABELS = ROOT / "aeq_onnx" / "data" / "imagenet_classes.txt"
STEPS = 50


def photo_list() -> list[Path]:
    """The bundled photos, then matplotlib's Grace Hopper photo when matplotlib is installed."""
    photos = sorted(IMAGES.glob("*.jpg"))
    try:
        import matplotlib

        hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        photos += [hopper] if hopper.is_file() else []
    except ImportError:
        pass
    return photos


def static_flatten(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace a Reshape with a computed shape (the export's ``x.view(batch, -1)`` after global
    pooling) by ``Flatten(axis=1)`` and drop the dead shape arithmetic (the reference
    interpreter has no Shape op). Same outputs for a [N, C, 1, 1] input."""
    g = model.graph
    consts = {t.name for t in g.initializer}
    for i, node in enumerate(list(g.node)):
        if node.op_type == "Reshape" and node.input[1] not in consts:
            g.node.remove(node)
            g.node.insert(i, helper.make_node("Flatten", [node.input[0]], [node.output[0]],
                                              name=f"{node.name}_flatten", axis=1))
    while True:
        used = {x for n in g.node for x in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            return model
        for n in dead:
            g.node.remove(n)


def load_lite0() -> tuple[Path, onnx.ModelProto]:
    """The cached Lite0 export and its canonical graph for the reference (constants folded by
    ``aeq_onnx.converters.canonicalize``, then :func:`static_flatten`)."""
    from aeq_onnx.converters import canonicalize
    from fixtures.efficientnet_lite0 import export

    path = export()
    return path, static_flatten(canonicalize(onnx.load(str(path))))


def _preprocess(path: Path) -> tuple[np.ndarray, Any]:
    from aeq_onnx.render.photos import load_image
    from aeq_onnx.render.presets import get_preset, input_spec, preprocess

    preset = get_preset("imagenet")
    return preprocess(load_image(path), preset, input_spec([1, 3, 224, 224], preset))


def load_photo(path: Path) -> np.ndarray:
    """The photo as the ``imagenet`` preset feeds it: (1, 3, 224, 224) float32."""
    return _preprocess(path)[0][None]


def load_photo_crop(path: Path) -> Any:
    """The resized, centre-cropped photo the model sees (PIL, RGB)."""
    return _preprocess(path)[1]


def run_photo(path: Path, index: int, out: Path, chunk: int = 4,
              names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    """Every variant on one photo (top-1 and top-2 classes; randomisation seed = ``index``);
    writes ``out`` (JSON) and the top-1/top-2 heatmaps beside it (``.npz``, float16 at unit
    max |H|)."""
    start = time.perf_counter()
    model_path, model = load_lite0()
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    x = load_photo(path)
    logits = session.run(None, {session.get_inputs()[0].name: x})[0][0]
    t1, t2 = (int(i) for i in np.argsort(-logits)[:2])
    nets = randomised_nets(model, seed=index)
    res = study_batch(nets, torch.from_numpy(x), torch.tensor([t1]), torch.tensor([t2]), names,
                      chunk)
    row = sample_metrics(res, 0, x[0], t1, softmax_predictor(session), STEPS)
    labels = LABELS.read_text(encoding="utf-8").splitlines()
    e = np.exp(logits - logits.max())
    p = e / e.sum()
    record = {"photo": path.name, "source": str(path), "top1": [t1, labels[t1], float(p[t1])],
              "top2": [t2, labels[t2], float(p[t2])], "steps": STEPS, "layers": nets.layers,
              "levels": sorted(nets.randomised), "metrics": row,
              "seconds": round(time.perf_counter() - start, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record) + "\n", encoding="utf-8")
    heats = {f"{which}/{name}": (h[0] / max(float(np.abs(h[0]).max()), 1e-30)).astype(np.float16)
             for which in ("top1", "top2") for name, h in res[which].items()}
    np.savez_compressed(out.with_suffix(".npz"), **heats)
    print(f"  {path.name}: {labels[t1]} / {labels[t2]}, {record['seconds']} s", flush=True)
    return record
