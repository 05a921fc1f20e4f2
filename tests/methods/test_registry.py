"""Methods as registered objects: parameters declared once and everything derived from them
(keyword checks, CLI flags, audit specs, metadata), the registry, and a new method added by one
class alone, compiled and run end to end."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pytest

import aeq_onnx
from aeq_onnx.audit.methods import DEFAULT_METHODS, aliases, compile_kwargs, parse_method
from aeq_onnx.cli import build_parser
from aeq_onnx.compile.inspection import inspect_model
from aeq_onnx.errors import AeqError, MethodError
from aeq_onnx.ir.planning import Plan
from aeq_onnx.methods import Method, Param, all_params, base, chains, get_method, make_method
from aeq_onnx.methods.base import Needs
from aeq_onnx.rules.base import EmitContext
from tests.helpers import explain
from tests.helpers_models import small_cnn


def test_names_in_their_order() -> None:
    assert aeq_onnx.METHOD_NAMES == ("ae", "gradient", "gradient-x-input",
                                     "integrated-gradients", "gradcam", "lrp-epsilon",
                                     "lrp-zplus")
    assert [get_method(n).name for n in aeq_onnx.METHOD_NAMES] == list(aeq_onnx.METHOD_NAMES)
    assert ",".join((*aeq_onnx.METHOD_NAMES, "rise")) == DEFAULT_METHODS
    assert aliases()["ig"] == "integrated-gradients" and aliases()["lrp-z+"] == "lrp-zplus"


def test_split_methods() -> None:
    assert [n for n in aeq_onnx.METHOD_NAMES if get_method(n).uses_split] == ["ae", "gradcam"]


BAD = [
    ({"ratio": 2.5}, AeqError, r"ratio must lie in \[1, 2\] \(spec 4.1\), got 2.5"),
    ({"ratio": float("nan")}, AeqError, "ratio must lie"),
    ({"add_rule": "sum"}, AeqError, "add rule must be one of residual, share, z, got sum"),
    ({"epsilon": -0.1}, MethodError, "epsilon must be >= 0, got -0.1"),
    ({"steps": 0}, MethodError, "steps must be a positive integer, got 0"),
    ({"steps": 2.0}, MethodError, "steps must be a positive integer, got 2.0"),
    ({"steps": True}, MethodError, "steps must be a positive integer, got True"),
    ({"baseline": "noise"}, MethodError, "baseline must be one of zero, blur, got 'noise'"),
    ({"blur_sigma": 0.0}, MethodError, "blur sigma must be > 0 pixels, got 0.0"),
]


@pytest.mark.parametrize("name", ["ae", "gradient", "lrp-epsilon"])
@pytest.mark.parametrize(("kw", "error", "message"), BAD,
                         ids=[next(iter(kw)) + "-" + str(kw[next(iter(kw))]) for kw, _, _ in BAD])
def test_every_known_parameter_is_checked_for_every_method(
        name: str, kw: dict[str, object], error: type[Exception], message: str) -> None:
    """A bad value is refused even when the chosen method does not use it (as before)."""
    with pytest.raises(error, match=message):
        make_method(name, **kw)


def test_values_are_kept_as_given_and_defaults_filled() -> None:
    ig = make_method("integrated-gradients", steps=4, ratio=1.5)
    assert (ig.steps, ig.baseline, ig.blur_sigma) == (4, "zero", 5.0)  # type: ignore[attr-defined]
    assert ig == aeq_onnx.IntegratedGradients(steps=4)
    assert make_method("ae", ratio=np.float32(1.5)).metadata()["ratio"] == "1.5"


def test_unknown_keyword_and_unknown_method() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'ratoi'"):
        make_method("ae", ratoi=1.5)
    with pytest.raises(MethodError, match="unknown method 'smoothgrad': choose one of ae, "):
        make_method("smoothgrad")
    with pytest.raises(TypeError, match="has no parameter 'steps'"):
        aeq_onnx.AE(steps=4)


def test_objects_are_immutable_values() -> None:
    ae = aeq_onnx.AE(ratio=1.5)
    with pytest.raises(AttributeError):
        ae.ratio = 1.0  # type: ignore[misc]
    assert ae == make_method("ae", ratio=1.5) != aeq_onnx.AE()
    assert len({ae, make_method("ae", ratio=1.5)}) == 1
    # the repr lists what the metadata records: parameters added later only when not default
    assert repr(ae) == "AE(ratio=1.5, add_rule='residual')"
    assert repr(aeq_onnx.AE(contrast="versus", versus=3)) == (
        "AE(ratio=2.0, add_rule='residual', contrast='versus', versus=3)")
    assert make_method(ae) is ae
    with pytest.raises(MethodError, match="not as keywords too"):
        make_method(ae, ratio=2.0)


def test_metadata_is_derived_from_the_parameters() -> None:
    assert make_method("ae", ratio=1.25, add_rule="z").metadata() == {
        "ratio": "1.25", "add_rule": "z"}
    assert make_method("lrp-epsilon", epsilon=0.1).metadata() == {
        "epsilon": "0.1", "input_rule": "zbox-sample-min-max", "add_rule": "z"}
    assert make_method("lrp-zplus").metadata() == {
        "input_rule": "zbox-sample-min-max", "add_rule": "z"}
    assert make_method("integrated-gradients", baseline="blur", blur_sigma=2.0).metadata() == {
        "steps": "32", "baseline": "blur", "integration": "riemann-midpoint",
        "blur_sigma": "2"}
    assert make_method("gradient").metadata() == {}


def test_public_signatures_spell_no_method_parameter() -> None:
    """``compile_explainer``, ``Explainer`` and ``inspect_model`` take ``**params``: the
    parameters are spelled once, in the method classes."""
    names = set(all_params())
    for fn in (aeq_onnx.compile_explainer, aeq_onnx.Explainer.__init__, inspect_model):
        parameters = inspect.signature(fn).parameters
        assert names.isdisjoint(parameters), fn
        assert any(p.kind is p.VAR_KEYWORD for p in parameters.values()), fn


def test_cli_flags_come_from_the_parameters() -> None:
    parser = build_parser()
    build = parser._subparsers._group_actions[0].choices["build"]  # type: ignore[union-attr]
    flags = {a.option_strings[0]: a for a in build._actions if a.option_strings}
    for param in all_params().values():
        assert (param.flag in flags) == param.cli, param.name
        if param.cli:
            assert flags[param.flag].help == param.help
            assert flags[param.flag].default is None
    args = parser.parse_args(["build", "m.onnx", "-o", "e.onnx", "--ratio", "1.5"])
    assert args.ratio == 1.5 and args.steps is None


def test_audit_specs_map_onto_the_parameters() -> None:
    spec = parse_method("ae:1.5")
    assert spec.label == "ae:r=1.5" and compile_kwargs(spec) == {"method": "ae", "ratio": 1.5}
    spec = parse_method("ig:steps=16;sigma=2;baseline=blur".replace(";", ","))
    assert compile_kwargs(spec) == {"method": "integrated-gradients", "steps": 16,
                                    "blur_sigma": 2, "baseline": "blur"}
    assert compile_kwargs(parse_method("lrp-eps:eps=0.1"))["epsilon"] == 0.1


# ---------------------------------------------------------------------- a new method


class Sensitivity(Method):
    """A toy method in a test: relevance = ``scale · x`` times the input gradient's sign."""

    name = "toy-sensitivity"
    order = 99
    facts: ClassVar[dict[str, str]] = {"toy": "yes"}
    scale = Param(1.0, "toy-sensitivity: scale (default 1)", low=0.0, low_open=True,
                  invalid="scale must be > 0, got {value}", aliases=("s",), positional=True)
    #: A parameter added later: the metadata of explainers that leave it alone stays the same.
    mode = Param("sign", "toy-sensitivity: sign or raw (default sign)", choices=("sign", "raw"),
                 invalid="mode must be one of {choices}, got {value}", record_default=False)

    def needs(self, plan: Plan) -> Needs:
        return (("vjp", plan.body),)

    def emit(self, ctx: EmitContext, plan: Plan) -> dict[str, str]:
        chosen, one_hot = chains.seed(ctx, plan)
        grad = chains.input_gradient(ctx, plan, one_hot)
        sign = ctx.em.op("Sign", [grad], "toy_sign") if self.mode == "sign" else grad
        scaled = ctx.em.op("Mul", [plan.input, ctx.em.const(float(self.scale))], "toy_scaled")
        return {"logits": plan.logits, "target_class": chosen,
                "relevance": ctx.em.op("Mul", [scaled, sign], "toy"),
                "initial_relevance": one_hot}

    def output_shapes(self, ctx: EmitContext, plan: Plan) -> dict[str, list[object] | None]:
        return chains.logits_shape(ctx, plan)  # type: ignore[return-value]


@pytest.fixture
def toy() -> Iterator[type[Method]]:
    """Register :class:`Sensitivity` for one test only."""
    base.register_method(Sensitivity)
    try:
        yield Sensitivity
    finally:
        del base._REGISTRY[Sensitivity.name]


def test_a_new_method_is_one_class(toy: type[Method], tmp_path: object) -> None:
    """Registered, the class is a method everywhere: compile by name with its keyword, the
    metadata, the CLI flag, an audit spec with its positional value."""
    assert aeq_onnx.methods.method_names()[-1] == "toy-sensitivity"
    model = small_cnn()
    explainer = aeq_onnx.compile_explainer(model, method="toy-sensitivity", scale=2.0)
    meta = {p.key: p.value for p in explainer.metadata_props}
    assert meta["aeq_onnx.method"] == "toy-sensitivity"
    assert (meta["aeq_onnx.scale"], meta["aeq_onnx.toy"]) == ("2", "yes")
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = explain(explainer, x, [0, 1])
    assert np.allclose(np.abs(out["relevance"][np.abs(out["relevance"]) > 0]),
                       np.abs(2.0 * x)[np.abs(out["relevance"]) > 0])
    assert "aeq_onnx.mode" not in meta
    raw = aeq_onnx.compile_explainer(model, method="toy-sensitivity", mode="raw")
    assert {p.key: p.value for p in raw.metadata_props}["aeq_onnx.mode"] == "raw"
    with pytest.raises(MethodError, match="scale must be > 0, got 0"):
        aeq_onnx.compile_explainer(model, method="toy-sensitivity", scale=0)
    args = build_parser().parse_args(["build", "m.onnx", "-o", "e.onnx", "--scale", "3"])
    assert args.scale == 3.0
    assert compile_kwargs(parse_method("toy-sensitivity:0.5")) == {
        "method": "toy-sensitivity", "scale": 0.5}


def test_a_name_or_a_conflicting_parameter_is_refused(toy: type[Method]) -> None:
    class Again(Sensitivity):
        pass

    with pytest.raises(MethodError, match="taken"):
        base.register_method(Again)

    class Clash(Method):
        name = "toy-clash"
        ratio = Param(3.0, "another ratio", invalid="{value}")

    with pytest.raises(MethodError, match="declared differently"):
        base.register_method(Clash)
