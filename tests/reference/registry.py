"""Which ONNX op gets which reference: forward and relevance functions registered by op type.

Every op's independent torch reference lives in its own test module, ``tests/rules/test_<op>.py``,
beside the tests that compare the compiled explainer with it (one op = one rule module + one
test module). A module registers its op with the decorator::

    @reference("Relu", relevance=pass_through)
    def relu(ins: Ins, node: Node) -> Tensor:
        return F.relu(ins[0])

The forward function computes the node's outputs with torch ops (autograd gives every VJP the
reference needs); the relevance function sends the relevance at the node's output to its
non-constant inputs (``None``: the op is supported above the split only). The interpreter
(``tests/reference/interpreter.py``) imports every module of ``tests/rules/`` the first time it
looks an op up (``discover``): there is no list of ops to edit.

Test modules are imported twice in a pytest run (once by pytest as ``test_<op>``, once here as
``tests.rules.test_<op>``): registering the same function again replaces it; two different
functions for one op type are an error.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import onnx
import torch

if TYPE_CHECKING:
    from tests.reference.interpreter import Walk

Tensor = torch.Tensor
Ins = Sequence[Tensor | None]
#: the packages whose ``test_*`` modules hold the references (imported by ``discover``)
PACKAGES = ("tests.rules",)

#: What the op-independent interpreter asks of an op (spec sections 2, 3, 4.3 and 4.7):
#: ``linear``: a Conv/Gemm/MatMul-like layer (it ends the input layer's raw region, 4.3, and
#: counts on the residual paths of 4.7); ``dense``: an MLP's split is the input of the last
#: such node (2); ``window_pool``: the default split steps back over it (2); ``softmax``: at the
#: model output, the logits are its input (3).
#: ``runtime_parameters``: the outputs after the first are quantization parameters computed at
#: run time (a DynamicQuantizeLinear's scale and zero point), no data (docs/deployed.md).
TRAITS = frozenset({"linear", "dense", "window_pool", "softmax", "runtime_parameters"})


class DuplicateReference(ValueError):
    """Two different references registered for one op type."""


@dataclass(frozen=True)
class Node:
    """One ONNX node as a reference sees it: the proto, its attributes (strings decoded), the
    model's opset and the float dtype the interpreter runs in."""

    proto: onnx.NodeProto
    at: dict[str, Any]
    opset: int
    dtype: torch.dtype

    @property
    def op(self) -> str:
        return self.proto.op_type

    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)


Forward = Callable[[Ins, Node], "Tensor | tuple[Tensor, ...]"]
#: ``(walk, node, R) -> [(input name, relevance)]``; ``R`` is the list of every output's
#: relevance (None where none arrives) when registered with ``multi_output=True``.
Relevance = Callable[["Walk", Node, Any], list[tuple[str, Tensor]]]


@dataclass(frozen=True)
class OpReference:
    """One registration: an op type, its forward, its relevance rule and its traits."""

    op: str
    forward: Forward
    relevance: Relevance | None
    traits: frozenset[str]
    multi_output: bool

    @property
    def origin(self) -> str:
        """Where the forward function is defined (file and qualified name)."""
        code = self.forward.__code__
        return f"{os.path.realpath(code.co_filename)}:{self.forward.__qualname__}"


_REFERENCES: dict[str, OpReference] = {}
_discovered = False


def reference(*ops: str, relevance: Relevance | None = None, traits: Sequence[str] = (),
              multi_output: bool = False) -> Callable[[Forward], Forward]:
    """Decorator: register the forward function for each op type in ``ops``, with the relevance
    function and the traits (``TRAITS``) of the op."""
    unknown = set(traits) - TRAITS
    if unknown:
        raise ValueError(f"unknown traits {sorted(unknown)}; known: {sorted(TRAITS)}")

    def wrap(forward: Forward) -> Forward:
        for op in ops:
            _add(OpReference(op, forward, relevance, frozenset(traits), multi_output))
        return forward

    return wrap


def _add(entry: OpReference) -> None:
    other = _REFERENCES.get(entry.op)
    if other is not None and other.origin != entry.origin:
        raise DuplicateReference(f"two references for {entry.op}: {other.origin} and "
                                 f"{entry.origin}")
    _REFERENCES[entry.op] = entry


def discover() -> None:
    """Import every ``test_*`` module of ``PACKAGES`` once, so that their references register."""
    global _discovered
    if _discovered:
        return
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
            if info.name.startswith("test_"):
                importlib.import_module(f"{package}.{info.name}")
    _discovered = True


def lookup(op: str) -> OpReference | None:
    """The reference registered for ``op`` (None when there is none)."""
    discover()
    return _REFERENCES.get(op)


def has_trait(op: str, trait: str) -> bool:
    """Whether ``op``'s reference declares ``trait``."""
    entry = lookup(op)
    return entry is not None and trait in entry.traits


def registered() -> dict[str, OpReference]:
    """Every registration, by op type."""
    discover()
    return dict(_REFERENCES)
