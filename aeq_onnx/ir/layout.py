"""Where every tensor holds the sample index, and its static dims (ae-tokens.md T1).

Exporters move the batch axis (PyTorch's MultiheadAttention works in ``[T, N, C]``) and merge
it with other axes (heads ``[N·H, T, d]``, Swin's windows ``[N·nW, T, C]``, tokens
``[T·N, C]``). One forward pass over the canonical graph gives every tensor a *layout*: a
tuple of dims, each a static ``int``, a :class:`Sample` (the axis holding the sample index,
``outer·N·inner`` elements laid out ``[outer][N][inner]``: static factors merged in) or
``None`` (unknown). Small int tensors computed from ``Shape`` carry their values (ints and
:class:`PerN` multiples of the batch size), so Reshape and Expand targets built from the batch
size are understood, and dims that onnx's shape inference left unknown become static.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """A dim of ``outer·N·inner`` elements, laid out ``[outer][N][inner]`` (N: the batch)."""

    outer: int = 1
    inner: int = 1

    @property
    def merged(self) -> bool:
        """True when the sample index shares its axis with other (static) factors."""
        return self.outer * self.inner != 1


@dataclass(frozen=True)
class PerN:
    """An entry ``k·N`` of a shape tensor (N: the batch size)."""

    k: int


Dim = int | Sample | None
Layout = tuple[Dim, ...]
Entry = int | PerN | None
Values = tuple[Entry, ...]


def sample_axis(layout: Layout | None) -> int | None:
    """The index of the layout's :class:`Sample` dim (None when it has none)."""
    if layout is None:
        return None
    found = [i for i, d in enumerate(layout) if isinstance(d, Sample)]
    return found[0] if len(found) == 1 else None


def static_product(dims: Sequence[Dim]) -> int | None:
    """The product of ``dims`` when all are ints."""
    if any(not isinstance(d, int) for d in dims):
        return None
    return math.prod(dims)  # type: ignore[arg-type]


def as_layout(values: Values | None) -> Layout | None:
    """The layout a shape tensor describes (``1·N`` becomes the sample dim)."""
    if values is None:
        return None
    return tuple(Sample() if isinstance(v, PerN) and v.k == 1 else v if isinstance(v, int)
                 else None for v in values)


def as_entry(dim: Dim) -> Entry:
    """The value ``Shape`` reports for one dim."""
    if isinstance(dim, Sample):
        return PerN(dim.outer * dim.inner)
    return dim


def place_sample(source: Layout, target: list[Dim | str]) -> Layout | None:
    """The layout of ``reshape(source, target)``: ``target`` holds ints, a Sample or PerN as
    a dim (copied or computed from the batch size) and ``"?"`` (the -1 entry). The sample dim
    goes where the row-major order puts the batch: ``[outer][N][inner]`` of the output dim
    whose prefix and suffix products leave a whole ``outer`` and ``inner`` (None: no such dim,
    the batch is mixed with its neighbours or lost)."""
    k = sample_axis(source)
    if k is None:
        return _static_reshape(source, target)
    s = source[k]
    assert isinstance(s, Sample)
    before, after = static_product(source[:k]), static_product(source[k + 1:])
    if before is None or after is None:
        return None
    pre, post = before * s.outer, s.inner * after
    symbolic = [i for i, t in enumerate(target) if not isinstance(t, int)]
    fixed = math.prod(t for t in target if isinstance(t, int))
    factor = {i: _factor(t) for i, t in enumerate(target) if isinstance(t, Sample | PerN)}
    if len(symbolic) == 1 and symbolic[0] not in factor:  # only the -1 entry: it holds N
        j = symbolic[0]
        if fixed == 0 or (pre * post) % fixed:
            return None
        factor[j] = pre * post // fixed
    elif len(symbolic) == 2 and len(factor) == 1:  # N elsewhere, -1 static
        (j,) = factor
        rest = fixed * factor[j]
        if rest == 0 or (pre * post) % rest:
            return None
        target = [(pre * post) // rest if t == "?" else t for t in target]
    elif len(symbolic) != 1:
        return None
    j = next(iter(factor))
    lead, tail = static_product(target[:j]), static_product(target[j + 1:])  # type: ignore[arg-type]
    if not lead or not tail or pre % lead or post % tail:
        return None
    outer, inner = pre // lead, post // tail
    if outer * inner != factor[j]:
        return None
    return tuple(Sample(outer, inner) if i == j else t for i, t in enumerate(target))  # type: ignore[misc]


def _factor(t: Dim | PerN | str) -> int:
    if isinstance(t, Sample):
        return t.outer * t.inner
    return t.k if isinstance(t, PerN) else 1


def _static_reshape(source: Layout, target: list[Dim | str]) -> Layout | None:
    """A reshape of a tensor without a sample dim (a constant-like tensor)."""
    total = static_product(source)
    if total is None or any(isinstance(t, Sample | PerN) for t in target):
        return None
    fixed = math.prod(t for t in target if isinstance(t, int))
    if "?" in target:
        if fixed == 0 or total % fixed:
            return None
        return tuple(total // fixed if t == "?" else t for t in target)  # type: ignore[misc]
    return tuple(target)  # type: ignore[arg-type]
