"""Contrastive seeds (issue 23): which objective ``J`` of the logits ``y`` a map explains.

AE's initial map is ``R0 = A · mean_hw(∂J/∂A)`` (spec section 3, where ``J = y_t``); LRP starts
from ``R = (∂J/∂y) · y`` at the logits (``J = y_t``: ``one_hot(t) · y``). A contrast changes
only the seed ``s = ∂J/∂y`` [N, K] that enters the vector-Jacobian products, computed in the
explainer graph from the logits and the target ``t``::

    logit    J = y_t                               s = e_t                (the paper; default)
    softmax  J = softmax(y)_t                      s = p_t (e_t - p)      (SGLRP, Iwana 2019)
    margin   J = y_t - logsumexp_{n≠t} y_n         s = e_t - q,  q = softmax over n ≠ t
    versus   J = y_t - y_K                         s = e_t - e_K  (K: ``versus``, or the
                                                                    runner-up argmax_{n≠t} y_n)
    dual     CLRP (Gu et al. 2018): R = max(0, R_t - ρ R_d), R_t from s = e_t, R_d from the
             dual class s = 1 - e_t (all other classes), ρ = sdiv(Σ max(R_t,0), Σ max(R_d,0))
             per sample: the dual map rescaled to the target's positive total, subtracted and
             clamped at zero; a second propagation in the same explainer run.

Every variant but ``dual`` costs a few [N, K] nodes; ``dual`` a second relevance chain
(docs/contrast.md). A ``versus`` explainer has one more output, ``versus_class`` (int64 [N]).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import TensorProto

from aeq_onnx.errors import MethodError
from aeq_onnx.ir import emit
from aeq_onnx.ir.emit import Emitter
from aeq_onnx.methods.base import Method, Param

CONTRASTS = ("logit", "softmax", "margin", "versus", "dual")
#: Shared by AE and the LRP baselines (one Param object: the registry requires it).
CONTRAST = Param("logit", "what the map contrasts: logit (default, the paper), softmax (SGLRP), "
                 "margin (t against all others), versus (t against --versus K), dual (CLRP; "
                 "a second propagation); see docs/contrast.md", choices=CONTRASTS,
                 invalid="contrast must be one of {choices}, got {value}", record_default=False)
VERSUS = Param(-1, "contrast versus: the class K to contrast the target with (default -1: "
               "the runner-up, chosen per sample in the explainer)", low=-1,
               invalid="versus must be a class index >= 0, or -1 for the runner-up, got {value}",
               record_default=False)
#: Where the target's logit is masked out (exp underflows to exactly 0).
LOWEST = float(np.finfo(np.float32).min)


def extra_outputs(method: Method) -> tuple[str, ...]:
    """The outputs a contrast adds to the explainer contract."""
    return ("versus_class",) if method._values["contrast"] == "versus" else ()


def check(method: Method) -> None:
    """Refuse ``versus=K`` without ``contrast='versus'``."""
    values = method._values
    if values["versus"] != -1 and values["contrast"] != "versus":
        raise MethodError(f"versus={values['versus']} picks the class of contrast 'versus'; "
                          f"add contrast='versus' (--contrast versus), got contrast="
                          f"'{values['contrast']}'")


def check_classes(method: Method, classes: int) -> None:
    """Refuse a contrast the model's ``classes`` cannot support (before emitting)."""
    values = method._values
    if values["contrast"] != "logit" and classes < 2:
        raise MethodError(f"contrast '{values['contrast']}' compares classes; the model has "
                          f"{classes}")
    if values["versus"] >= classes:
        raise MethodError(f"versus={values['versus']} is not a class of this model "
                          f"(0..{classes - 1})")


def _others_masked(em: Emitter, logits: str, one_hot: str) -> str:
    """The logits with the target's set to the lowest float32 (out of any max or softmax)."""
    is_t = em.op("Cast", [one_hot], "is_target", to=TensorProto.BOOL)
    return em.op("Where", [is_t, em.const(LOWEST, "lowest"), logits], "others_logits")


def seeds(em: Emitter, logits: str, one_hot: str, contrast: str, versus: int,
          classes: int) -> tuple[list[str], dict[str, str]]:
    """The seed(s) ``∂J/∂y`` [N, K] of ``contrast`` (see the module docstring): one tensor, or
    the target's and the dual's for ``dual``; and the extra outputs (``versus_class``: the K
    of each sample, int64 [N], for ``versus``). ``logit`` emits nothing (the one-hot itself)."""
    if contrast == "logit":
        return [one_hot], {}
    if contrast == "dual":
        return [one_hot, em.op("Sub", [em.const(1.0), one_hot], "dual_seed")], {}
    if contrast == "softmax":  # p_t (e_t (1 - p_t) - p_others), 1 - p_t as Σ_{n≠t} p_n:
        p = em.op("Softmax", [logits], "softmax_p", axis=1)  # exact where p_t rounds to 1
        axis = em.ints([1], "axis1")
        p_t = em.op("ReduceSum", [em.op("Mul", [p, one_hot], "p_target"), axis], "p_t",
                    keepdims=1)
        p_others = em.op("Mul", [p, em.op("Sub", [em.const(1.0), one_hot], "others")],
                         "p_others")
        rest = em.op("ReduceSum", [p_others, axis], "one_minus_p_t", keepdims=1)
        inner = em.op("Sub", [em.op("Mul", [one_hot, rest], "e_t_rest"), p_others], "e_t_m_p")
        return [em.op("Mul", [p_t, inner], "softmax_seed")], {}
    masked = _others_masked(em, logits, one_hot)
    if contrast == "margin":
        q = em.op("Softmax", [masked], "others_softmax", axis=1)
        return [em.op("Sub", [one_hot, q], "margin_seed")], {}
    if versus >= 0:
        row = em.const(np.eye(classes, dtype=np.float32)[versus][None], "versus_row")
        k_hot = em.op("Add", [em.op("Mul", [one_hot, em.const(0.0)], "zeros"), row],
                      "versus_one_hot")  # [N, K]
        k = em.op("ArgMax", [k_hot], "versus_k", axis=1, keepdims=0)
    else:
        k = em.op("ArgMax", [masked], "runner_up", axis=1, keepdims=0)
        k_hot = em.op("OneHot", [k, em.const(np.int64(classes), "depth"),
                                 em.const(np.array([0.0, 1.0], np.float32), "onehot_values")],
                      "versus_one_hot", axis=-1)
    return [em.op("Sub", [one_hot, k_hot], "versus_seed")], {"versus_class": k}


def clrp(em: Emitter, r_target: str, r_dual: str, rank: int) -> str:
    """``max(0, R_t - ρ R_d)``, ``ρ = sdiv(Σ max(R_t,0), Σ max(R_d,0))`` per sample."""
    pos_t = emit.sample_sum(em, emit.relu(em, r_target), rank)
    pos_d = emit.sample_sum(em, emit.relu(em, r_dual), rank)
    rho = emit.sdiv(em, pos_t, pos_d)
    diff = em.op("Sub", [r_target, em.op("Mul", [rho, r_dual], "rho_dual")], "clrp_diff")
    return emit.relu(em, diff)


# ------------------------------------------------------------- reading an explainer's contrast

#: What each contrast answers, for galleries and reports.
QUESTIONS = {
    "logit": "evidence for the class (AE, the paper)",
    "softmax": "evidence for the class's softmax probability (SGLRP seed)",
    "margin": "evidence for the class against all other classes (logit margin)",
    "versus": "why the class and not the compared class K",
    "dual": "evidence for the class minus the evidence for all others (CLRP dual)",
}


def described(metadata: dict[str, str]) -> str:
    """One line on an explainer's contrast (from its metadata), or "" for the paper's AE."""
    name = metadata.get("contrast", "logit")
    if name == "logit":
        return ""
    return f"contrast {name}: {QUESTIONS.get(name, name)}."


def versus_classes(metadata: dict[str, str], logits: np.ndarray,
                   targets: np.ndarray) -> np.ndarray | None:
    """The class K each map was contrasted with (as the explainer chose it: ``versus``, or the
    runner-up to the target), or None when the explainer is not ``contrast versus``."""
    if metadata.get("contrast") != "versus":
        return None
    fixed = int(metadata.get("versus", "-1"))
    if fixed >= 0:
        return np.full(len(targets), fixed, np.int64)
    masked = np.array(logits, np.float64)
    masked[np.arange(len(targets)), targets] = -np.inf
    return masked.argmax(axis=1)


def versus_label(names: Sequence[str], versus: np.ndarray | None, i: int, target: int) -> str:
    """``name (K)`` of sample ``i``'s compared class; "" when not versus; ``itself (empty
    map)`` when K is the target (``y_t - y_t`` has no gradient)."""
    if versus is None:
        return ""
    k = int(versus[i])
    return "itself (empty map)" if k == target else f"{names[k]} ({k})"
