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
from aeq_onnx.methods import METHOD_NAMES, all_params, get_method, method_names

#: Heatmaps (N, H, W) for a batch in the model's layout and int64 targets (N,).
HeatFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: The black-box method an audit runs itself (through the plain model).
RISE = "rise"
DEFAULT_METHODS = ",".join((*METHOD_NAMES, RISE))


def aliases() -> dict[str, str]:
    """The other names of the compiled methods (``ig``, ``grad-cam`` ...), from the registry."""
    return {alias: name for name in method_names() for alias in get_method(name).aliases}


def _compile_keys() -> dict[str, str]:
    """Option keys of a white-box spec: every method parameter by name and alias, the layer."""
    return {"layer": "layer", **{key: p.name for p in all_params().values()
                                 for key in (p.name, *p.aliases)}}


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


def _bare_key(name: str) -> str | None:
    """The key a bare value after ``name:`` stands for: its positional parameter's short name
    (its first alias), so ``ae:1.5`` is ``ae:r=1.5``; None when the method has none."""
    if name not in method_names():
        return None
    found = [p for p in get_method(name).params if p.positional]
    return (found[0].aliases or (found[0].name,))[0] if found else None


def parse_method(text: str) -> MethodSpec:
    """``ae``, ``ae:1.5`` (AE ratio), ``ae:r=1.5``, ``integrated-gradients:steps=16`` …"""
    name, _, rest = text.strip().partition(":")
    name = aliases().get(name.lower(), name.lower())
    if name not in (*method_names(), RISE):
        valid = ", ".join((*method_names(), RISE))
        raise InputError(f"unknown method '{name}' (valid: {valid})")
    options: dict[str, float | int | str] = {}
    bare = _bare_key(name)
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:  # a bare value is the method's positional parameter (AE's ratio)
            key, value = (bare, key) if bare is not None else (key, "")
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


def compile_kwargs(spec: MethodSpec) -> dict[str, object]:
    """Keyword arguments of :func:`aeq_onnx.compile_explainer` for a white-box method."""
    kwargs: dict[str, object] = {"method": spec.name}
    keys = _compile_keys()
    for key, value in spec.options.items():
        if key not in keys:
            raise InputError(f"unknown option '{key}' of method {spec.label} "
                             f"(known: {', '.join(sorted(keys))})")
        kwargs[keys[key]] = value
    return kwargs


def cached_explainer(model: onnx.ModelProto, spec: MethodSpec, folder: Path | None,
                     source_sha: str, isolate: bool | None = None) -> onnx.ModelProto:
    """Compile ``spec`` for ``model``, reusing ``folder/SLUG.onnx`` when it was built from the
    same model (its ``aeq_onnx.source_sha256``); ``isolate``: see
    :func:`aeq_onnx.load.load_model`."""
    from aeq_onnx.compile.assemble import explainer_metadata  # the compiler when it is needed
    from aeq_onnx.compile.compiler import compile_explainer

    path = None if folder is None else folder / f"{spec.slug}.onnx"
    if path is not None and path.is_file():
        cached = onnx.load(os.fspath(path))
        if explainer_metadata(cached).get("source_sha256") == source_sha:
            return cached
    proto = compile_explainer(model, isolate=isolate, **compile_kwargs(spec))  # type: ignore[arg-type]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, os.fspath(path))
    return proto
