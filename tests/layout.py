"""Static facts about the package's source, for ``tests/test_layout.py``: its modules, the
import graph between them (every import statement, at module level, in functions and under
``TYPE_CHECKING``), its cycles, and the comparisons that branch on a method's name."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aeq_onnx"


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its ``__init__.py``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool,
              known: dict[str, Path]) -> Iterator[str]:
    """The modules of ``known`` one import statement of module ``name`` reads."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        here = name.split(".") if is_package else name.split(".")[:-1]
        here = here[:len(here) - node.level + 1]
        base = ".".join([*here, *([base] if base else [])])
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if sub in known else base


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its source."""
    known = modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                is_package = path.name == "__init__.py"
                targets.update(t for t in _imported(node, name, is_package, known)
                               if t in known and t != name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _strings(node: ast.expr) -> list[str]:
    """The string constants of an expression that is one, or a tuple/list/set of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for item in node.elts for s in _strings(item)]
    return []


def _names_a_method(node: ast.expr) -> bool:
    """``something.method.name``, ``method.name``, ``spec.method`` and the like."""
    text = ast.unparse(node)
    return "method" in text.lower() and (text.endswith(".name") or text.endswith(".method"))


def method_branches(path: Path, names: set[str]) -> list[str]:
    """``line: source`` of every comparison with a method's name (a string of ``names``, or an
    attribute like ``method.name``) and every read of ``is_lrp`` / ``is_gradient``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        hit = False
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            hit = any(set(_strings(s)) & names for s in sides) or any(
                _names_a_method(s) for s in sides)
        elif isinstance(node, ast.Attribute):
            hit = node.attr in ("is_lrp", "is_gradient")
        elif isinstance(node, ast.Name):
            hit = node.id in ("LRP_METHODS", "GRADIENT_METHODS", "SPLIT_METHODS")
        if hit:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def _collection_strings(node: ast.AST) -> list[str]:
    """The strings of a tuple/list/set literal, or of ``frozenset(...)``/``set(...)`` of one."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args and (
            node.func.id in ("frozenset", "set", "tuple")):
        node = node.args[0]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for item in node.elts for s in _strings(item)]
    return []


def op_questions(path: Path, ops: set[str]) -> list[str]:
    """``line: source`` of every question about a graph node's op type that only a rule may
    answer: a comparison with a node's ``.op``, and a collection literal naming an op of
    ``ops`` (a list of op names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        hit = False
        if isinstance(node, ast.Compare):
            hit = any(isinstance(s, ast.Attribute) and s.attr == "op"
                      for s in (node.left, *node.comparators))
        elif isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Call):
            hit = bool(set(_collection_strings(node)) & ops)
        if hit:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found
