"""What the graph questions need to know of an op: its *traits*.

The rules declare them, as ``traits`` on a rule class (:mod:`aeq_onnx.rules`). This stage
sits above the rules and never imports them: its questions (and a rule's questions about
another node) ask :attr:`GraphView.traits <aeq_onnx.ir.graph.GraphView.traits>`, a lookup that
``compile/prepare.py`` sets from the rule registry (as it sets ``GraphView.data_edges``). A
view nobody set it on knows no traits.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx_graphsurgeon as gs

#: A layer with weights (Conv-, Gemm-, MatMul-like): counts on the paths that tell a residual
#: shortcut from its branch (spec 4.7); the layers no such op precedes are the input layers
#: (4.3); the audit's cascading randomisation redraws its weights.
LINEAR = "linear"
#: A dense layer: when no node collapses space, the split is the input of the last one (spec 2).
DENSE = "dense"
#: A windowed pool: the default split steps back over it (spec 2).
WINDOW_POOL = "window_pool"
#: At the model output, the logits are its input (spec 3).
SOFTMAX = "softmax"
#: The output is never negative (a ReLU): the rules then skip the x⁻ terms (value ranges).
NONNEG_OUTPUT = "nonneg_output"
#: The output is never negative when no data input is (a pool, a reshape).
SIGN_KEEPING = "sign_keeping"
#: The output is a gate (in [0, 1]): a Mul of two tensors sends all relevance to the other
#: operand, the signal (spec 4.8).
GATE = "gate"

#: Found only in token models (LayerNormalization, attention mixing ``P·V``): on the
#: input-to-logits chain it makes the model a token model, whose constants absorb their share
#: and whose joins follow the token rule (ae-tokens T2, T3); its input holds channels last.
TOKEN = "token"
#: May remove token axes (the class-token Gather/Slice, a mean over tokens): the last such node
#: before the logits gives a token model its split (ae-tokens T2).
TOKEN_POOL = "token_pool"

#: Every trait a rule may declare.
TRAITS = frozenset({LINEAR, DENSE, WINDOW_POOL, SOFTMAX, NONNEG_OUTPUT, SIGN_KEEPING, GATE,
                    TOKEN, TOKEN_POOL})

#: A node's traits.
Traits = Callable[[gs.Node], frozenset[str]]


def no_traits(node: gs.Node) -> frozenset[str]:
    """What a view knows of a node before the compiler tells it the rules' traits: nothing."""
    return frozenset()
