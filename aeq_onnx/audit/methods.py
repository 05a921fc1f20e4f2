"""Which attribution methods an audit runs: parsing ``--methods`` and building one runner each.

A white-box method is compiled by :func:`aeq_onnx.compile_explainer` into an explainer with the
common contract (``logits``, ``target_class``, ``relevance``) and cached under
``OUT/explainers/``; RISE (Petsiuk et al. 2018) is black-box and runs the plain model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from aeq_onnx.errors import InputError

#: Heatmaps (N, H, W) for a batch in the model's layout and int64 targets (N,).
HeatFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
WHITE_BOX = ("ae", "gradient", "gradient-x-input", "integrated-gradients", "gradcam",
             "lrp-epsilon", "lrp-zplus")
ALIASES = {"grad": "gradient", "saliency": "gradient", "gxi": "gradient-x-input",
           "ig": "integrated-gradients", "grad-cam": "gradcam", "lrp-eps": "lrp-epsilon",
           "lrp-z+": "lrp-zplus"}
DEFAULT_METHODS = "ae,gradient,gradient-x-input,integrated-gradients,gradcam,lrp-epsilon," \
    "lrp-zplus,rise"


@dataclass(frozen=True)
class MethodSpec:
    """One method of the audit: its base name, its options and the label used in reports."""

    name: str
    options: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``ae``, ``ae:r=1.5``, ``integrated-gradients:steps=16`` …"""
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name}:{extra}" if extra else self.name

    @property
    def slug(self) -> str:
        """The label as a file-name part."""
        return "".join(c if c.isalnum() or c in "-." else "_" for c in self.label)


def _option(key: str, value: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def parse_method(text: str) -> MethodSpec:
    """``ae``, ``ae:1.5`` (AE ratio), ``ae:r=1.5``, ``integrated-gradients:steps=16`` …"""
    name, _, rest = text.strip().partition(":")
    name = ALIASES.get(name.lower(), name.lower())
    if name not in (*WHITE_BOX, "rise"):
        valid = ", ".join((*WHITE_BOX, "rise"))
        raise InputError(f"unknown method '{name}' (valid: {valid})")
    options: dict[str, float | int | str] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:  # a bare number after ae is its ratio
            key, value = ("r", key) if name == "ae" else (key, "")
        if not value:
            raise InputError(f"method option '{part}' of '{text}' needs key=value")
        options[key.strip()] = _option(key.strip(), value.strip())
    return MethodSpec(name, options)


def parse_methods(text: str) -> list[MethodSpec]:
    """A comma list of methods; options after ``:`` separated by ``;`` within one method."""
    specs = [parse_method(part.replace(";", ",")) for part in text.split(",") if part.strip()]
    if not specs:
        raise InputError("no method given")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise InputError(f"a method is listed twice: {', '.join(labels)}")
    return specs


_COMPILE_KEYS = {"r": "ratio", "ratio": "ratio", "steps": "steps", "baseline": "baseline",
                 "epsilon": "epsilon", "eps": "epsilon", "add_rule": "add_rule",
                 "layer": "layer", "sigma": "blur_sigma"}


def compile_kwargs(spec: MethodSpec) -> dict[str, object]:
    """Keyword arguments of :func:`aeq_onnx.compile_explainer` for a white-box method."""
    kwargs: dict[str, object] = {"method": spec.name}
    for key, value in spec.options.items():
        if key not in _COMPILE_KEYS:
            raise InputError(f"unknown option '{key}' of method {spec.label} "
                             f"(known: {', '.join(sorted(_COMPILE_KEYS))})")
        kwargs[_COMPILE_KEYS[key]] = value
    return kwargs


def cached_explainer(model: onnx.ModelProto, spec: MethodSpec, folder: Path | None,
                     source_sha: str) -> onnx.ModelProto:
    """Compile ``spec`` for ``model``, reusing ``folder/SLUG.onnx`` when it was built from the
    same model (its ``aeq_onnx.source_sha256``)."""
    from aeq_onnx.compile.compiler import compile_explainer

    path = None if folder is None else folder / f"{spec.slug}.onnx"
    if path is not None and path.is_file():
        cached = onnx.load(os.fspath(path))
        meta = {p.key: p.value for p in cached.metadata_props}
        if meta.get("aeq_onnx.source_sha256") == source_sha:
            return cached
    proto = compile_explainer(model, **compile_kwargs(spec))  # type: ignore[arg-type]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, os.fspath(path))
    return proto
