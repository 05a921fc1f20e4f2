"""Explanation methods as registered objects: the :class:`Method` base class, :class:`Param`
declarations and the registry by name.

A method is a class in its own module of :mod:`aeq_onnx.methods` (found there on import) with
a ``name`` and its parameters declared once, as :class:`Param` class attributes. Everything
else is derived from the declarations: the keyword arguments of
:func:`~aeq_onnx.compile_explainer`, :class:`~aeq_onnx.Explainer` and ``inspect_model``
(checked once, by :func:`make_method`), the ``aeq`` command's flags, the keys of an audit's
``--methods`` spec (``ae:1.5``, ``integrated-gradients:steps=16``) and the explainer's metadata.
The object then says what it needs from the plan, emits its outputs and answers the op rules'
questions (:class:`~aeq_onnx.rules.base.MethodHooks`), so nothing outside this package asks a
method for its name.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar, Generic, TypeVar, overload

import onnx_graphsurgeon as gs

from aeq_onnx.errors import AeqError, MethodError
from aeq_onnx.ir.graph import Dim
from aeq_onnx.ir.planning import Plan
from aeq_onnx.rules.base import EmitContext, JoinRule, LayerRule

T = TypeVar("T", float, int, str)
#: What each chain must support: ``("vjp" | "relevance", nodes)`` pairs.
Needs = tuple[tuple[str, list[gs.Node]], ...]


class Param(Generic[T]):
    """One parameter of a method, declared as a class attribute of it (the attribute's name is
    the keyword argument): default, check, help, and how the CLI and the audit spell it.

    ``choices`` or the bounds ``low`` / ``high`` (``low_open``: ``low`` excluded) say what is
    valid; ``invalid`` is the error message (``{value}``, ``{choices}``) and ``error`` its
    type. ``cli`` adds the flag ``--name-with-dashes`` to ``aeq build/explain/inspect``;
    ``aliases`` are extra keys of an audit spec, ``positional`` takes a bare value
    (``ae:1.5``). The metadata records the value as text (``%g`` for floats); with
    ``record_default=False`` only a value other than the default (so a parameter added to a
    method leaves the explainers compiled without it byte for byte as they were).
    """

    def __init__(self, default: T, help: str, *, invalid: str, choices: tuple[T, ...] = (),
                 low: float | None = None, high: float | None = None, low_open: bool = False,
                 error: type[AeqError] = MethodError, cli: bool = True,
                 aliases: tuple[str, ...] = (), positional: bool = False,
                 record_default: bool = True) -> None:
        self.name = ""
        self.default: T = default
        self.choices: tuple[T, ...] = choices
        self.help, self.invalid, self.error = help, invalid, error
        self.low, self.high, self.low_open = low, high, low_open
        self.cli, self.aliases, self.positional = cli, aliases, positional
        self.record_default = record_default

    def __set_name__(self, owner: type, name: str) -> None:
        if self.name and self.name != name:
            raise MethodError(f"parameter '{self.name}' is declared again as '{name}'")
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Param[T]: ...

    @overload
    def __get__(self, instance: Method, owner: type) -> T: ...

    def __get__(self, instance: Method | None, owner: type) -> Param[T] | T:
        if instance is None:
            return self
        value: T = instance._values[self.name]
        return value

    @property
    def flag(self) -> str:
        """The CLI option: ``--`` and the name with dashes."""
        return "--" + self.name.replace("_", "-")

    def valid(self, value: object) -> bool:
        """Whether ``value`` is in ``choices``, or a number of the default's kind in bounds."""
        if self.choices:
            return value in self.choices
        if isinstance(value, bool):
            return False
        if isinstance(self.default, str):
            return isinstance(value, str)
        if isinstance(self.default, int) and not isinstance(value, int):
            return False
        if not isinstance(value, numbers.Real):
            return False
        number = float(value)
        low_ok = self.low is None or (number > self.low if self.low_open else number >= self.low)
        return low_ok and (self.high is None or number <= self.high)

    def check(self, value: object) -> T:
        """``value`` itself when valid, else the declared error."""
        if not self.valid(value):
            raise self.error(self.invalid.format(value=value, choices=", ".join(
                str(c) for c in self.choices)))
        return value  # type: ignore[return-value]

    def text(self, value: object) -> str:
        """The value as the explainer's metadata records it."""
        return f"{value:g}" if isinstance(self.default, float) else str(value)

    def recorded(self, value: object) -> bool:
        """Whether the metadata records ``value`` (see ``record_default``)."""
        return self.record_default or value != self.default


class Method:
    """One explanation method and its parameter values (immutable; equal when the class and
    the values are). Subclasses set the class attributes and implement :meth:`needs` and
    :meth:`emit`; methods with relevance rules answer :meth:`conv_rule`, :meth:`dense_rule`
    and :meth:`join_rule`.
    """

    #: The name users give (``--method``, ``method=``, the explainer's ``aeq_onnx.method``).
    name: ClassVar[str] = ""
    #: Other names an audit's ``--methods`` accepts.
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Position in :data:`~aeq_onnx.METHOD_NAMES` (the CLI's list, the audit's default order).
    order: ClassVar[int] = 100
    #: True when the method explains at a split tensor (and so accepts ``layer=``).
    uses_split: ClassVar[bool] = False
    #: Fixed facts recorded in the metadata after the parameters.
    facts: ClassVar[dict[str, str]] = {}
    #: The declared parameters, in declaration order (collected from the class attributes).
    params: ClassVar[tuple[Param[Any], ...]] = ()

    _values: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, Param[Any]] = {}
        for klass in reversed(cls.__mro__):
            found.update((p.name, p) for p in vars(klass).values() if isinstance(p, Param))
        cls.params = tuple(found.values())

    def __init__(self, **values: object) -> None:
        own = {p.name for p in self.params}
        for key in values:
            if key not in own:
                raise TypeError(f"{type(self).__name__} has no parameter '{key}'")
        checked = {p.name: p.check(values.get(p.name, p.default)) for p in self.params}
        object.__setattr__(self, "_values", checked)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} objects are immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Method) and type(other) is type(self) and (
            other._values == self._values)

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._values.items())))

    def __repr__(self) -> str:
        """The parameters the metadata would record (a ``record_default=False`` one only
        where it differs from its default)."""
        values = ", ".join(f"{p.name}={self._values[p.name]!r}" for p in self.params
                           if p.recorded(self._values[p.name]))
        return f"{type(self).__name__}({values})"

    # ------------------------------------------------------------------ what the compiler asks

    def metadata(self) -> dict[str, str]:
        """The method's parameters and facts as recorded in the explainer's metadata."""
        return {**{p.name: p.text(self._values[p.name]) for p in self.params
                   if p.recorded(self._values[p.name])}, **self.facts}

    def needs(self, plan: Plan) -> Needs:
        """Which chains of ``plan`` need a VJP and which relevance rules."""
        raise NotImplementedError

    def emit(self, ctx: EmitContext, plan: Plan) -> dict[str, str]:
        """Emit the method's part of the explainer; its output tensors by contract name."""
        raise NotImplementedError

    def output_shapes(self, ctx: EmitContext, plan: Plan) -> dict[str, list[Dim] | None]:
        """Declared shapes of the outputs that differ from AE's (``initial_relevance``)."""
        return {}

    def check_model(self, ctx: EmitContext, plan: Plan) -> None:
        """Raise an :class:`AeqError` for what stops this method on the whole model (not one
        node), before anything is emitted."""

    def check_options(self, layer: str | None, expose_gradient: bool) -> None:
        """Refuse compile options that mean nothing for this method."""
        if self.uses_split:
            return
        split = " and ".join(n for n in method_names() if get_method(n).uses_split)
        if layer is not None:
            raise MethodError(f"layer= picks the split tensor of {split}; {self.name} "
                              "explains from the logits")
        if expose_gradient:
            raise MethodError(f"expose_gradient adds the split tensor's gradient: {split} "
                              f"only, not {self.name}")

    # ------------------------------------------------------------------ what the rules ask

    def conv_rule(self, is_input_layer: bool, kernel: tuple[int, ...]) -> LayerRule:
        """The relevance variant of a Conv/ConvTranspose layer."""
        raise MethodError(f"{self.name} propagates no relevance through layers")

    def dense_rule(self, is_input_layer: bool) -> LayerRule:
        """The relevance variant of a Gemm/MatMul layer."""
        raise MethodError(f"{self.name} propagates no relevance through layers")

    def join_rule(self) -> JoinRule:
        """The relevance rule where two tensors join (Add, Sum)."""
        raise MethodError(f"{self.name} propagates no relevance through layers")

    def token_linear_rule(self, is_input_layer: bool) -> LayerRule:
        """The relevance variant of a per-token Gemm/MatMul layer (ae-tokens T3)."""
        return self.dense_rule(is_input_layer)

    def token_join_rule(self) -> JoinRule:
        """The relevance rule where two tensors join in a token model."""
        return self.join_rule()

    def plan_metadata(self, plan: Plan) -> dict[str, str]:
        """What the metadata records about the rules this plan runs (token models: what
        each part of the model is explained with); {} for CNNs."""
        return {}


# ---------------------------------------------------------------------- the registry

_REGISTRY: dict[str, type[Method]] = {}
M = TypeVar("M", bound=type[Method])


def register_method(cls: M) -> M:
    """Class decorator: register ``cls`` under its ``name``. A name or alias taken twice, or a
    parameter declared twice with different settings, is an error."""
    taken = {a: n for n, c in _REGISTRY.items() for a in (n, *c.aliases)}
    for label in (cls.name, *cls.aliases):
        if not label or label in taken:
            raise MethodError(f"method name '{label}' of {cls.__name__} is empty or taken")
    known = all_params()
    for param in cls.params:
        other = known.get(param.name)
        if other is not None and other is not param and vars(other) != vars(param):
            raise MethodError(f"parameter '{param.name}' of {cls.name} is declared differently "
                              "by another method: share one Param object")
    _REGISTRY[cls.name] = cls
    return cls


def method_names() -> tuple[str, ...]:
    """Every registered method name, by ``order`` (then registration)."""
    ranked = sorted(enumerate(_REGISTRY.values()), key=lambda item: (item[1].order, item[0]))
    return tuple(cls.name for _, cls in ranked)


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``."""
    found = _REGISTRY.get(name) if isinstance(name, str) else None
    if found is None:
        raise MethodError(f"unknown method {name!r}: choose one of "
                          f"{', '.join(method_names())}")
    return found


def all_params() -> dict[str, Param[Any]]:
    """Every registered method's parameters by name, in method order (the CLI's flags)."""
    found: dict[str, Param[Any]] = {}
    for name in method_names():
        for param in _REGISTRY[name].params:
            found.setdefault(param.name, param)
    return found


def make_method(method: str | Method = "ae", **params: object) -> Method:
    """The method object: ``method`` itself, or the one named ``method`` with ``params``.

    Every keyword that is a parameter of some method is checked (a bad value is an error even
    for a method that does not use it); the method keeps its own. An unknown keyword is a
    :class:`TypeError`, as for any Python function."""
    known = all_params()
    for key in params:
        if key not in known:
            raise TypeError(f"unexpected keyword argument '{key}'")
    if isinstance(method, Method):
        if params:
            raise MethodError(f"give the parameters of {method.name} to its object, not as "
                              f"keywords too ({', '.join(sorted(params))})")
        return method
    cls = get_method(method)
    own = [p.name for p in cls.params]
    for param in (*cls.params, *(p for p in known.values() if p.name not in own)):
        if param.name in params:
            param.check(params[param.name])
    return cls(**{k: v for k, v in params.items() if k in own})
