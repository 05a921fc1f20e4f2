"""Checks for untrusted models, one concern per module: walking the proto (:mod:`.walk`),
versions and op domains (:mod:`.versions`), size caps (:mod:`.limits`), external-data paths
(:mod:`.external`), NaN/Inf weights (:mod:`.weights`) and onnx's checker in a limited child
process (:mod:`.isolate`, the child's program in :mod:`.child`).

Every refusal is a one-line :class:`~aeq_onnx.errors.ModelLoadError` subclass; the loader
(:mod:`aeq_onnx.load.loading`) runs them in order.
"""

from aeq_onnx.load.safety.external import check_external_data
from aeq_onnx.load.safety.isolate import check_isolated
from aeq_onnx.load.safety.limits import check_allocations, check_tensor_sizes
from aeq_onnx.load.safety.versions import check_domains, check_versions, ort_limits
from aeq_onnx.load.safety.walk import all_nodes, all_tensors, check_strings
from aeq_onnx.load.safety.weights import check_finite_weights

__all__ = ["all_nodes", "all_tensors", "check_allocations", "check_domains",
           "check_external_data", "check_finite_weights", "check_isolated", "check_strings",
           "check_tensor_sizes", "check_versions", "ort_limits"]
