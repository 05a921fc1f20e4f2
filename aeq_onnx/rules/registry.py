"""Which ONNX op gets which rule: a registry keyed by ``op_type`` and opset range.

A rule class says *how* one op propagates a gradient (its VJP) and relevance; the method
object in :mod:`aeq_onnx.methods` says *which* relevance variant applies where. Registering
two rules for the same op type with overlapping opset ranges is an error.

A rule class also declares the op's *traits* (:mod:`aeq_onnx.ir.traits`), which the graph
questions of :mod:`aeq_onnx.ir` ask through :func:`node_traits`. An op that has no rule but
traits (Softmax at the model output) is declared with :func:`declare`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import onnx_graphsurgeon as gs

from aeq_onnx.errors import AeqError, DuplicateRuleError
from aeq_onnx.ir.traits import TRAITS

if TYPE_CHECKING:
    from aeq_onnx.ir.graph import GraphView
    from aeq_onnx.rules.base import EmitContext, OpRule, OpTraits

R = TypeVar("R", bound="type[OpRule]")
T = TypeVar("T", bound="type[OpTraits]")
MAX_OPSET = 10_000


@dataclass(frozen=True)
class RuleEntry:
    """One registration: an op type, the opsets it covers (inclusive) and the rule."""

    op_type: str
    since: int
    until: int
    rule: OpRule


_REGISTRY: dict[str, list[RuleEntry]] = {}
_DECLARED: dict[str, OpTraits] = {}


def _check_traits(cls: type[OpTraits]) -> None:
    unknown = set(cls.traits) - TRAITS
    if unknown:
        raise ValueError(f"{cls.__name__} declares unknown traits {sorted(unknown)}; known: "
                         f"{sorted(TRAITS)}")


def register(*op_types: str, since: int = 1, until: int = MAX_OPSET) -> Callable[[R], R]:
    """Class decorator: register one instance of the rule for each op type and opset range."""

    def wrap(cls: R) -> R:
        _check_traits(cls)
        instance = cls()
        for op_type in op_types:
            _add(RuleEntry(op_type, since, until, instance))
        return cls

    return wrap


def declare(*op_types: str) -> Callable[[T], T]:
    """Class decorator for ops that have traits but no rule (Softmax, at the model output
    only): one instance of the :class:`~aeq_onnx.rules.base.OpTraits` class for each op type.
    An op declared twice, or declared and given a rule, is an error."""

    def wrap(cls: T) -> T:
        _check_traits(cls)
        instance = cls()
        for op_type in op_types:
            if op_type in _DECLARED or op_type in _REGISTRY:
                raise DuplicateRuleError(f"{op_type} is declared by {cls.__name__} and already "
                                         "has a rule or a declaration")
            _DECLARED[op_type] = instance
        return cls

    return wrap


def _add(entry: RuleEntry) -> None:
    if entry.op_type in _DECLARED:
        raise DuplicateRuleError(f"{entry.op_type} is declared without a rule by "
                                 f"{type(_DECLARED[entry.op_type]).__name__}")
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


def declarations() -> list[tuple[str, OpTraits]]:
    """Every op declared without a rule, sorted by op type (for docs)."""
    return sorted(_DECLARED.items())


def traits_of(op_type: str) -> frozenset[str]:
    """The traits the rule classes (or the declaration) of ``op_type`` declare, any opset."""
    found = {t for e in _REGISTRY.get(op_type, []) for t in e.rule.traits}
    declared = _DECLARED.get(op_type)
    return frozenset(found | (declared.traits if declared is not None else set()))


def ops_with_trait(trait: str) -> list[str]:
    """Every op type whose rule class (or declaration) has ``trait``, sorted."""
    if trait not in TRAITS:
        raise ValueError(f"unknown trait '{trait}'; known: {sorted(TRAITS)}")
    return sorted(op for op in {*_REGISTRY, *_DECLARED} if trait in traits_of(op))


def node_traits(view: GraphView, node: gs.Node) -> frozenset[str]:
    """The traits of ``node``: its rule's at the view's opset (refined per node), else its
    declaration's, else those of its rules at other opsets (none for an unknown op)."""
    try:
        return lookup(node.op, view.opset).node_traits(view, node)
    except RuleNotFound:
        declared = _DECLARED.get(node.op)
        return declared.node_traits(view, node) if declared is not None else traits_of(node.op)


def why_unsupported(ctx: EmitContext, node: gs.Node, need: str) -> str | None:
    """None when a rule covers ``node`` for ``need`` ("vjp" or "relevance"), else the reason."""
    try:
        rule = lookup(node.op, ctx.view.opset)
    except RuleNotFound:
        return "no rule for this op"
    return rule.check(ctx, node, need)
