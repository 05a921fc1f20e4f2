"""Class-mapping files: dataset class name -> model output indices.

Text format (``.txt`` or any other suffix), one class per line::

    # comment lines and blank lines are ignored
    dog: 151-268          # inclusive range
    cat: 281-285, 383     # comma-separated indices and ranges
    person: 0
    potted plant: 738

The class name is everything before the last ``:`` (stripped, spaces allowed); the targets are
non-negative integers or inclusive ranges ``a-b`` with ``a <= b``; ``#`` starts a comment. A
name may appear only once. JSON format (``.json``): an object whose values are an index, a
string in the text syntax (``"151-268"``) or a list of those: ``{"dog": "151-268", "cat":
[281, "282-285"]}``.

Classes missing from the mapping keep empty targets. Without a mapping (``None``), a class name
that is a non-negative integer is taken as the model output itself (``"207"`` -> ``(207,)``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from aeq_onnx.audit.errors import MappingError

Mapping = dict[str, tuple[int, ...]]
_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_targets(text: str, where: str) -> tuple[int, ...]:
    """``"151-268, 300"`` -> the sorted distinct indices; ``where`` names the line for errors."""
    indices: set[int] = set()
    for part in text.split(","):
        match = _ITEM.match(part)
        if not match:
            raise MappingError(where, f"bad target {part.strip()!r}: want N or A-B")
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise MappingError(where, f"empty range {low}-{high}")
        indices.update(range(low, high + 1))
    return tuple(sorted(indices))


def parse_mapping(text: str, source: str = "<mapping>") -> Mapping:
    """Parse the text format (see the module docstring)."""
    mapping: Mapping = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}:{number}"
        name, sep, targets = line.rpartition(":")
        if not sep or not name.strip():
            raise MappingError(where, f"want 'class name: targets', got {line!r}")
        if name.strip() in mapping:
            raise MappingError(where, f"class {name.strip()!r} mapped twice")
        mapping[name.strip()] = parse_targets(targets, where)
    return mapping


def _json_targets(value: Any, where: str) -> tuple[int, ...]:
    """Targets of one JSON value: int, text-syntax string or a list of those."""
    values = value if isinstance(value, list) else [value]
    indices: set[int] = set()
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            indices.add(v)
        elif isinstance(v, str):
            indices.update(parse_targets(v, where))
        else:
            raise MappingError(where, f"bad target {v!r}")
    return tuple(sorted(indices))


def load_mapping(path: str | os.PathLike[str]) -> Mapping:
    """Read a mapping file: JSON for ``.json``, else the text format."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise MappingError(str(path), f"cannot read: {error}") from error
    if path.suffix.lower() != ".json":
        return parse_mapping(text, str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise MappingError(str(path), f"invalid JSON: {error}") from error
    if not isinstance(data, dict):
        raise MappingError(str(path), "the JSON mapping must be an object")
    return {str(k): _json_targets(v, f"{path}[{k!r}]") for k, v in data.items()}


def targets_for(name: str, mapping: Mapping | None) -> tuple[int, ...]:
    """Model outputs of dataset class ``name`` (see the module docstring for ``None``)."""
    if mapping is None:
        return (int(name),) if re.fullmatch(r"\s*[0-9]+\s*", name) else ()
    return mapping.get(name.strip(), ())
