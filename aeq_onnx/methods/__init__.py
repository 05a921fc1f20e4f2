"""Stage 5, methods: which explanation a compiled explainer computes.

One module per family (:mod:`.ae`, :mod:`.lrp`, :mod:`.gradient`, :mod:`.gradcam`), each
registering its :class:`~aeq_onnx.methods.base.Method` classes; every module of this package
is imported here, so a new method is one new module (and its test), nothing else to edit.
:mod:`.base` holds the base class, :class:`~aeq_onnx.methods.base.Param` and the registry,
:mod:`.chains` what the methods' emission shares.
"""

import importlib
import pkgutil

from aeq_onnx.methods.base import (
    Method,
    Param,
    all_params,
    get_method,
    make_method,
    method_names,
    register_method,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

#: Every method name the compiler accepts, in their ``order`` (the CLI lists these).
METHOD_NAMES: tuple[str, ...] = method_names()

__all__ = ["METHOD_NAMES", "Method", "Param", "all_params", "get_method", "make_method",
           "method_names", "register_method"]
