"""Versions and op domains: refuse IR versions and opsets newer than the installed onnx and
onnxruntime support, and ops outside the standard ONNX domain (save the custom-domain ops the
caller accepts: onnxruntime's quantized ops that have a rule, docs/deployed.md)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from functools import cache

import onnx
import onnx.defs
from onnx import TensorProto, helper

from aeq_onnx.errors import CustomDomainError, VersionError
from aeq_onnx.load.safety.walk import all_nodes

#: Op domains accepted without ``allow_custom_domains``.
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
#: Ops of custom domains a caller accepts, by domain (the rules' own: compile/prepare.py).
AcceptedOps = Mapping[str, AbstractSet[str]]


def is_known_op(domain: str, op_type: str, accepted: AcceptedOps | None = None) -> bool:
    """True for a standard op, or one of the ``accepted`` ops of its domain."""
    return domain in STANDARD_DOMAINS or op_type in (accepted or {}).get(domain, ())


@cache
def _ort_accepts(ir_version: int, opset: int) -> bool:
    """Whether onnxruntime creates a session for a one-Relu model of these versions."""
    import onnxruntime as ort

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises its own (untyped) errors
        return False
    return True


@cache
def ort_limits() -> tuple[str, int, int]:
    """(onnxruntime version, newest IR version, newest default-domain opset) it accepts."""
    import onnxruntime as ort

    ir = next((v for v in range(onnx.IR_VERSION + 2, 3, -1) if _ort_accepts(v, 14)), 3)
    opset = next((v for v in range(onnx.defs.onnx_opset_version() + 2, 13, -1)
                  if _ort_accepts(min(ir, onnx.IR_VERSION), v)), 14)
    return ort.__version__, ir, opset


def check_versions(model: onnx.ModelProto, label: str) -> None:
    """Refuse IR or opset versions newer than the installed onnx or onnxruntime support."""
    ort_version, ort_ir, ort_opset = ort_limits()
    if model.ir_version > min(onnx.IR_VERSION, ort_ir):
        raise VersionError(
            f"{label} uses ONNX IR version {model.ir_version}, but the installed onnx "
            f"{onnx.__version__} supports at most IR version {onnx.IR_VERSION} and onnxruntime "
            f"{ort_version} at most IR version {ort_ir}")
    newest = onnx.defs.onnx_opset_version()
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version > min(newest, ort_opset):
            raise VersionError(
                f"{label} uses ONNX opset {entry.version}, but the installed onnx "
                f"{onnx.__version__} supports at most opset {newest} and onnxruntime "
                f"{ort_version} at most opset {ort_opset}")


def check_domains(model: onnx.ModelProto, label: str,
                  accepted: AcceptedOps | None = None) -> None:
    """Refuse nodes from op domains other than the standard ONNX one (listing them), save
    the ``accepted`` ops of their domain."""
    custom: dict[str, set[str]] = {}
    for node in all_nodes(model):
        if not is_known_op(node.domain, node.op_type, accepted):
            custom.setdefault(node.domain, set()).add(node.op_type)
    for function in model.functions:
        if function.domain not in STANDARD_DOMAINS:
            custom.setdefault(function.domain, set()).add(function.name)
    if custom:
        listed = "; ".join(f"{domain} ({', '.join(sorted(ops))})"
                           for domain, ops in sorted(custom.items()))
        raise CustomDomainError(
            f"{label} uses custom op domain(s): {listed}; only standard ONNX ops and onnxruntime's "
            "quantized ops (docs/deployed.md) are accepted "
            "(load_model(..., allow_custom_domains=True) to load it anyway)")
