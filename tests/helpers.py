"""Shared test helpers: build tiny ONNX classifiers inline, run them with onnxruntime, and compare
the compiled explainer with the independent torch reference (``tests/reference/ae_torch.py``).

"Two implementations, one truth": every helper here that checks relevance runs the same model
through ``aeq_onnx.compile_explainer`` + onnxruntime and through ``ae_torch.reference_explain``
and asserts that they agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

import aeq_onnx
from tests.reference import ae_torch

OPSET = 17
IR_VERSION = 10
REL_TOL = 1e-4  # of max |reference| for relevance, R0 and the split gradient
LOGIT_TOL = 1e-5

__all__ = [
    "LOGIT_TOL",
    "REL_TOL",
    "Net",
    "ae_torch",
    "assert_rel_close",
    "check_logits",
    "compare_with_reference",
    "explain",
    "random_input",
    "reference_explain",
    "reference_gradient",
    "run_model",
    "session",
    "torch_single_thread",
]


# ----------------------------------------------------------------------------- building models


class Net:
    """A tiny classifier built node by node with ``onnx.helper``.

    The data input is ``input`` with a dynamic batch dim ``N`` and the given per-sample shape;
    every op appends one node, returns its output name and makes it the *current* tensor, which
    the next op consumes unless ``x=`` names another. Weights are seeded random float32.
    """

    def __init__(self, shape: Sequence[int], seed: int = 0, input_name: str = "input") -> None:
        self.rng = np.random.default_rng(seed)
        self.in_shape = tuple(int(d) for d in shape)
        self.input = input_name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.cur = input_name
        self._count = 0

    # --- plumbing

    def fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, value: np.ndarray | float, prefix: str = "c") -> str:
        """A float32 (or int64 when integral dtype) initializer."""
        arr = np.asarray(value)
        arr = arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float32)
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def weight(self, shape: Sequence[int], fan_in: int, prefix: str = "w") -> str:
        w = self.rng.standard_normal(tuple(shape)) / np.sqrt(max(fan_in, 1))
        return self.const(w, prefix)

    def op(self, op_type: str, inputs: Sequence[str], name: str | None = None,
           **attrs: object) -> str:
        """Append ``op_type(inputs)`` with ``attrs``; its output becomes the current tensor."""
        out = name or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"n_{out}",
                                           **attrs))
        self.cur = out
        return out

    def shape(self, name: str | None = None) -> tuple[int, ...]:
        """Static per-sample shape of a tensor (from ONNX shape inference)."""
        name = name or self.cur
        if name == self.input:
            return self.in_shape
        probe = self.build(output=name, classes=None)
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True)
        for vi in (*inferred.graph.value_info, *inferred.graph.output):
            if vi.name == name:
                return tuple(d.dim_value for d in vi.type.tensor_type.shape.dim[1:])
        raise KeyError(name)

    def build(self, output: str | None = None, classes: int | None = None) -> onnx.ModelProto:
        """The model with ``output`` (default: the current tensor) as its only output."""
        output = output or self.cur
        dims = ["N", classes] if classes is not None else None
        graph = helper.make_graph(
            self.nodes, "tiny",
            [helper.make_tensor_value_info(self.input, TensorProto.FLOAT,
                                           ["N", *self.in_shape])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, dims)],
            initializer=self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        return model

    # --- layers

    def conv(self, cout: int, kernel: Sequence[int] | int = 3, *, stride: int | Sequence[int] = 1,
             pads: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, group: int = 1,
             bias: bool = True, auto_pad: str | None = None, x: str | None = None,
             name: str | None = None) -> str:
        x = x or self.cur
        cin = self.shape(x)[0]
        k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        s = (stride, stride) if isinstance(stride, int) else tuple(stride)
        d = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
        p = (pads,) * 4 if isinstance(pads, int) else tuple(pads)
        w = self.weight((cout, cin // group, *k), fan_in=cin // group * k[0] * k[1])
        inputs = [x, w]
        if bias:
            inputs.append(self.const(0.1 * self.rng.standard_normal(cout), "b"))
        pad_attr: dict[str, object] = {"auto_pad": auto_pad} if auto_pad else {"pads": list(p)}
        return self.op("Conv", inputs, name, kernel_shape=list(k), strides=list(s),
                       dilations=list(d), group=group, **pad_attr)

    def relu(self, x: str | None = None, name: str | None = None) -> str:
        return self.op("Relu", [x or self.cur], name)

    def batchnorm(self, x: str | None = None, name: str | None = None) -> str:
        x = x or self.cur
        c = self.shape(x)[0]
        scale = self.const(self.rng.uniform(0.5, 1.5, c), "bn_scale")
        bias = self.const(0.1 * self.rng.standard_normal(c), "bn_bias")
        mean = self.const(0.1 * self.rng.standard_normal(c), "bn_mean")
        var = self.const(self.rng.uniform(0.5, 1.5, c), "bn_var")
        return self.op("BatchNormalization", [x, scale, bias, mean, var], name, epsilon=1e-5)

    def gemm(self, out: int, *, trans_b: int = 1, alpha: float = 1.0, beta: float = 1.0,
             bias: bool = True, x: str | None = None, name: str | None = None) -> str:
        x = x or self.cur
        fin = self.shape(x)[0]
        w = self.weight((out, fin) if trans_b else (fin, out), fan_in=fin)
        inputs = [x, w]
        if bias:
            inputs.append(self.const(0.1 * self.rng.standard_normal(out), "b"))
        return self.op("Gemm", inputs, name, transB=trans_b, alpha=alpha, beta=beta)

    def matmul(self, out: int, *, bias: bool = True, x: str | None = None,
               name: str | None = None) -> str:
        x = x or self.cur
        fin = self.shape(x)[0]
        y = self.op("MatMul", [x, self.weight((fin, out), fan_in=fin)], None if bias else name)
        if bias:
            y = self.op("Add", [y, self.const(0.1 * self.rng.standard_normal(out), "b")], name)
        return y

    def head(self, classes: int = 5, x: str | None = None) -> onnx.ModelProto:
        """GlobalAveragePool → Flatten → Gemm(classes) on a rank-4 tensor; the finished model."""
        self.op("GlobalAveragePool", [x or self.cur])
        self.op("Flatten", [self.cur], axis=1)
        self.gemm(classes, name="y")
        return self.build(classes=classes)


# ----------------------------------------------------------------------------- running


@contextmanager
def torch_single_thread() -> Iterator[None]:
    """Run torch on one thread (tiny tensors: threads only add overhead, ~10x here), then
    restore the process-wide setting for the other tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def reference_explain(model: onnx.ModelProto, x: np.ndarray, **kw: object) -> dict:
    """``ae_torch.reference_explain`` on one torch thread."""
    with torch_single_thread():
        return ae_torch.reference_explain(model, x, **kw)  # type: ignore[arg-type]


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A single-threaded CPU session (the test machine is shared)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run_model(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The model's first output on ``x``."""
    sess = session(model)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def explain(explainer: onnx.ModelProto, x: np.ndarray,
            target: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Every output of a compiled explainer, by name; ``target`` None means top-1 (-1)."""
    sess = session(explainer)
    t = np.full(x.shape[0], -1, np.int64) if target is None else np.asarray(target, np.int64)
    data = next(i.name for i in sess.get_inputs() if i.name != "target")
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {data: x, "target": t}), strict=True))


def reference_gradient(model: onnx.ModelProto, x: np.ndarray, target: np.ndarray,
                       split: str) -> np.ndarray:
    """``∂ logit_t / ∂A`` at the split tensor, by torch autograd on the reference interpreter."""
    graph = ae_torch.Graph(model)
    xs = torch.from_numpy(x).double().requires_grad_(True)
    with torch_single_thread():
        env = ae_torch.run_forward(graph, xs)
        logits = env[ae_torch.logits_name(graph)]
        picked = logits.gather(1, torch.from_numpy(np.asarray(target)).long()[:, None]).sum()
        (g,) = torch.autograd.grad(picked, env[split], allow_unused=True)
    return np.zeros(env[split].shape) if g is None else g.detach().numpy()


def assert_rel_close(got: np.ndarray, want: np.ndarray, tol: float = REL_TOL,
                     what: str = "") -> float:
    """``max|got - want| <= tol · max|want|`` (exact zeros where ``want`` is all zero).

    Returns the relative error for reports."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.isfinite(got).all(), f"{what}: non-finite values"
    scale = float(np.abs(want).max()) if want.size else 0.0
    err = float(np.abs(got - want).max()) if want.size else 0.0
    rel = err / scale if scale > 0 else err
    if scale > 0:
        idx = np.unravel_index(int(np.abs(got - want).argmax()), want.shape)
        detail = f"at {idx}: got {got[idx]:.6g}, want {want[idx]:.6g}"
    else:
        detail = "reference is all zero"
    assert rel <= tol, f"{what}: max error {err:.3g} = {rel:.3g} of max|ref| {scale:.3g}; {detail}"
    return rel


def check_logits(model: onnx.ModelProto, x: np.ndarray, logits: np.ndarray) -> None:
    """The explainer's ``logits`` equal the model's own onnxruntime output (1e-5); when the
    model ends in Softmax/LogSoftmax, the logits are its input, so (log-)softmax them first."""
    want = run_model(model, x)
    last = next((n for n in model.graph.node if model.graph.output[0].name in n.output), None)
    got = np.asarray(logits, np.float64)
    if last is not None and last.op_type in ("Softmax", "LogSoftmax"):
        got = got - got.max(axis=1, keepdims=True)
        log_p = got - np.log(np.exp(got).sum(axis=1, keepdims=True))
        got = log_p if last.op_type == "LogSoftmax" else np.exp(log_p)
    np.testing.assert_allclose(got, want, rtol=LOGIT_TOL, atol=LOGIT_TOL)


@dataclass
class Compared:
    """What one comparison produced (for further assertions in the tests)."""

    explainer: onnx.ModelProto
    outputs: dict[str, np.ndarray]
    reference: dict


def compare_with_reference(model: onnx.ModelProto, x: np.ndarray, *,
                           target: Sequence[int] | None = None, ratio: float = 2.0,
                           layer: str | None = None, add_rule: str = "residual",
                           tol: float = REL_TOL, split_name: bool = True) -> Compared:
    """Compile ``model``, run it on ``x`` and compare with ``ae_torch.reference_explain``:
    logits with the model's own onnxruntime output (1e-5), the target, ``relevance``,
    ``initial_relevance`` and ``split_gradient`` with the reference (``tol`` of max |ref|)."""
    explainer = aeq_onnx.compile_explainer(model, ratio=ratio, layer=layer,
                                           add_rule=add_rule,  # type: ignore[arg-type]
                                           expose_gradient=True)
    out = explain(explainer, x, target)
    check_logits(model, x, out["logits"])
    ref_target = None if target is None else np.asarray(target)
    ones = [  # one reference call per sample: explicit targets may differ
        reference_explain(
            model, x[i : i + 1], target=None if ref_target is None else int(ref_target[i]),
            ratio=ratio, split=layer, add_rule=add_rule)
        for i in range(x.shape[0])]
    ref = {k: np.concatenate([o[k] for o in ones]) for k in ("R", "R0", "target")}
    ref["split"] = ones[0]["split"]
    np.testing.assert_array_equal(out["target_class"], ref["target"])
    split = ref["split"]
    meta = {p.key: p.value for p in explainer.metadata_props}
    if split_name:
        assert meta.get("aeq_onnx.split") == split, f"split {meta.get('aeq_onnx.split')} != {split}"
    grad = reference_gradient(model, x, ref["target"], split)
    assert_rel_close(out["split_gradient"], grad, tol, "split_gradient")
    assert_rel_close(out["initial_relevance"], ref["R0"], tol, "initial_relevance")
    assert_rel_close(out["relevance"], ref["R"], tol, "relevance")
    return Compared(explainer, out, ref)


def random_input(shape: Sequence[int], batch: int = 2, seed: int = 1,
                 scale: float = 1.0) -> np.ndarray:
    """A seeded standard-normal float32 batch."""
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((batch, *shape))).astype(np.float32)
