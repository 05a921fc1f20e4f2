"""Independent torch reference implementation of Attribution Equilibrium (AE): the entry point.

Nam & Lee, "Illuminating Salient Contributions in Neuron Activation with Attribution
Equilibrium", IEEE T-PAMI 2024 (arXiv 2205.11109); the rules are those of
``shared/docs/ae-rules.md``. This is the second of "two implementations, one truth": it shares
no code with ``aeq_onnx``, runs an ONNX graph with plain torch ops one sample at a time, takes
every transposed convolution and pooling VJP from torch autograd and never touches onnxruntime.

``reference_explain(model, batch, ...)`` is what the tests, the fuzzers and the coverage script
call. The reference itself is split by concern:

- ``tests/reference/interpreter.py``: the op-independent core (forward with kept activations,
  split tensor and R0, the reverse walk with fan-out sums, one sample at a time), over
  ``tests/reference/graph.py`` (the parsed graph, the input layer and the residual shortcut);
- ``tests/reference/formulas.py``: the section-4 formulas as torch functions;
- ``tests/reference/relevance.py``: relevance rules that several ops share;
- ``tests/reference/registry.py``: ``@reference(op, relevance=..., traits=...)``;
- ``tests/rules/test_<op>.py``: each op's forward and relevance, beside its tests.
"""

from __future__ import annotations

from tests.reference.formulas import (
    ConvGeom,
    add_rule,
    bsum,
    conv,
    conv_bounded,
    conv_hidden,
    conv_pointwise,
    conv_t,
    gemm_rule,
    layer_rule,
    pool_rule,
    sdiv,
    split_pos_neg,
    sum_rule,
    vjp,
)
from tests.reference.graph import Graph, raw_tensors, residual_choice
from tests.reference.interpreter import (
    Walk,
    explain_one,
    find_split,
    forward_node,
    initial_map,
    logits_name,
    reference_explain,
    run_forward,
)

__all__ = [
    "ConvGeom",
    "Graph",
    "Walk",
    "add_rule",
    "bsum",
    "conv",
    "conv_bounded",
    "conv_hidden",
    "conv_pointwise",
    "conv_t",
    "explain_one",
    "find_split",
    "forward_node",
    "gemm_rule",
    "initial_map",
    "layer_rule",
    "logits_name",
    "pool_rule",
    "raw_tensors",
    "reference_explain",
    "residual_choice",
    "run_forward",
    "sdiv",
    "split_pos_neg",
    "sum_rule",
    "vjp",
]
