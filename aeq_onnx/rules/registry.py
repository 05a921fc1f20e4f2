"""Which ONNX op gets which rule: a registry keyed by ``op_type`` and opset range.

A rule class says *how* one op propagates a gradient (its VJP) and relevance; the method
object in :mod:`aeq_onnx.methods` says *which* relevance variant applies where. Registering
two rules for the same op type with overlapping opset ranges is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import onnx_graphsurgeon as gs

from aeq_onnx.errors import AeqError, DuplicateRuleError

if TYPE_CHECKING:
    from aeq_onnx.rules.base import EmitContext, OpRule

R = TypeVar("R", bound="type[OpRule]")
MAX_OPSET = 10_000


@dataclass(frozen=True)
class RuleEntry:
    """One registration: an op type, the opsets it covers (inclusive) and the rule."""

    op_type: str
    since: int
    until: int
    rule: OpRule


_REGISTRY: dict[str, list[RuleEntry]] = {}


def register(*op_types: str, since: int = 1, until: int = MAX_OPSET) -> Callable[[R], R]:
    """Class decorator: register one instance of the rule for each op type and opset range."""

    def wrap(cls: R) -> R:
        instance = cls()
        for op_type in op_types:
            _add(RuleEntry(op_type, since, until, instance))
        return cls

    return wrap


def _add(entry: RuleEntry) -> None:
    entries = _REGISTRY.setdefault(entry.op_type, [])
    for other in entries:
        if entry.since <= other.until and other.since <= entry.until:
            raise DuplicateRuleError(
                f"two rules for {entry.op_type} at opsets {entry.since}-{entry.until} and "
                f"{other.since}-{other.until}: {type(other.rule).__name__}, "
                f"{type(entry.rule).__name__}"
            )
    entries.append(entry)


class RuleNotFound(AeqError):
    """No rule covers this op type at this opset."""


def lookup(op_type: str, opset: int) -> OpRule:
    """The rule for ``op_type`` at ``opset``; raises :class:`RuleNotFound`."""
    for entry in _REGISTRY.get(op_type, []):
        if entry.since <= opset <= entry.until:
            return entry.rule
    raise RuleNotFound(f"no rule for {op_type} at opset {opset}")


def supported_ops() -> list[str]:
    """Every registered op type, sorted."""
    return sorted(_REGISTRY)


def entries() -> list[RuleEntry]:
    """Every registration, sorted by op type (for docs and ``aeq inspect``)."""
    return [e for op in sorted(_REGISTRY) for e in _REGISTRY[op]]


def why_unsupported(ctx: EmitContext, node: gs.Node, need: str) -> str | None:
    """None when a rule covers ``node`` for ``need`` ("vjp" or "relevance"), else the reason."""
    try:
        rule = lookup(node.op, ctx.view.opset)
    except RuleNotFound:
        return "no rule for this op"
    return rule.check(ctx, node, need)
