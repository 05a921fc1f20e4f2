"""Op rules: one module per ONNX op (or per family of ops that literally share one rule class:
Identity/Dropout, Flatten/Reshape/Squeeze/Unsqueeze, Softmax/LogSoftmax), each rule
registered by op type and opset range with :func:`~aeq_onnx.rules.registry.register`.

Every module of this package is imported here, found with ``pkgutil``: adding an op is adding
its module (and its test module, ``tests/rules/test_<op>.py``), with no list to edit.
``registry`` and ``base`` are the machinery; ``shared/`` holds what several rules share
(the AE and LRP layer formulas, family base classes) and registers nothing.
"""

import importlib
import pkgutil

from aeq_onnx.rules.registry import entries, lookup, supported_ops

#: Modules of this package that hold no rule.
MACHINERY = frozenset({"base", "registry"})


def _discover() -> tuple[str, ...]:
    """Import every rule module of this package (sorted by name); their names."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__)
                   if not m.ispkg and m.name not in MACHINERY)
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return tuple(names)


#: The rule modules, by name (``relu``, ``conv`` ...).
RULE_MODULES = _discover()

__all__ = ["RULE_MODULES", "entries", "lookup", "supported_ops"]
