"""DynamicQuantizeLinear (onnxruntime's ``quantize_dynamic``; docs/deployed.md): its scale and
zero point are computed at run time and are no data (nothing flows to them); the quantized
output passes gradient and relevance straight through to the input (4.5). Explainer vs the
reference on the float surrogate."""

from __future__ import annotations

import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized_dynamic
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference

Tensor = torch.Tensor


def dynamic_relevance(walk: Walk, node: Node, R: list[Tensor | None]) -> list[tuple[str, Tensor]]:
    """Relevance at the quantized output passes to the input; none reaches the parameters."""
    return [] if R[0] is None else [(node.inputs[0], R[0])]


@reference("DynamicQuantizeLinear", relevance=dynamic_relevance, multi_output=True,
           traits=["runtime_parameters"])
def dynamic_quantize_linear(ins: Ins, node: Node) -> tuple[Tensor, Tensor, Tensor]:
    """uint8 ``y = saturate(round(x / s) + zp)``, ``s = (max(0, max x) - min(0, min x)) / 255``,
    ``zp = saturate(round(-min(0, min x) / s))``; y integer-valued (its consumers,
    ConvInteger and MatMulInteger, work in integer units), straight-through gradient; the
    parameters detached (no data)."""
    x = ins[0]
    assert x is not None
    low = torch.clamp(x.detach().min(), max=0)
    high = torch.clamp(x.detach().max(), min=0)
    scale = (high - low) / 255
    zero = torch.clamp(torch.round(-low / scale), 0, 255)
    v = x / scale + zero
    q = torch.clamp(torch.round(v), 0, 255)
    return q.detach() + (v - v.detach()), scale, zero


def dense_net(seed: int) -> Net:
    """An MLP on 12 features: MatMul-Add, Relu, MatMul-Add."""
    net = Net((12,), seed=seed)
    net.matmul(10)
    net.relu()
    net.matmul(5)
    return net


def test_run_time_scale_is_no_data() -> None:
    """The scale and zero point are computed from the whole batch at run time: the explainer
    sends no flow to them (its gradient at the input is the straight-through one, checked
    against the reference through R0 and R), and the deployed model's batch scale is used."""
    model = quantized_dynamic(dense_net(21).build(classes=5))
    assert "DynamicQuantizeLinear" in ops_of(model)
    got = compare_deployed(model, random_input((12,), batch=3, seed=22))
    assert got.out["relevance"].shape == (3, 12)
