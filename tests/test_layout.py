"""The package's layout holds: no import cycles (function-level and ``TYPE_CHECKING`` imports
included), a small top level, no module imports the package's ``__init__``, no branch on a
method's name outside ``aeq_onnx/methods/``, no list of op names outside the rules (and the
converters), and ``docs/architecture.md`` names every subpackage and only paths that exist.
Each check is also shown to catch what it forbids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import aeq_onnx
from aeq_onnx.rules import registry
from tests.layout import (
    PACKAGE,
    ROOT,
    cycles,
    import_graph,
    method_branches,
    modules,
    op_questions,
)

ARCHITECTURE = ROOT / "docs" / "architecture.md"
#: What may sit at the top of ``aeq_onnx/`` beside the subpackages.
TOP_LEVEL = {"__init__.py", "_version.py", "errors.py", "py.typed", "data", "__pycache__"}


def _package(root: Path, files: dict[str, str]) -> Path:
    """A throw-away package ``pkg`` under ``root`` made of ``files``."""
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50 and sum(len(v) for v in graph.values()) > 100
    assert cycles(graph) == []


def test_a_cycle_hidden_in_a_function_is_found(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "", "a.py": "from pkg.b import x\n",
        "b.py": "x = 1\n\ndef f():\n    from pkg import a\n    return a\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.d import y\n",
        "d.py": "from . import c\ny = 2\n", "e.py": "from pkg.a import x\n"})
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]


def test_the_top_level_holds_only_the_api_the_version_and_the_errors() -> None:
    stray = sorted(p.name for p in PACKAGE.iterdir() if p.name not in TOP_LEVEL
                   and not (p.is_dir() and (p / "__init__.py").exists()))
    assert stray == []


def test_no_module_imports_the_package_init() -> None:
    """``aeq_onnx/__init__`` is the public API only: nothing inside the package reads it."""
    importers = sorted(m for m, targets in import_graph().items() if "aeq_onnx" in targets)
    assert importers == []


def test_no_branch_on_a_method_name_outside_the_methods() -> None:
    names = {n for n in aeq_onnx.METHOD_NAMES} | {
        a for n in aeq_onnx.METHOD_NAMES for a in aeq_onnx.get_method(n).aliases}
    found = [hit for name, path in modules().items()
             if not name.startswith("aeq_onnx.methods") for hit in method_branches(path, names)]
    assert found == []


def test_the_branch_finder_finds_branches(tmp_path: Path) -> None:
    code = ("def f(ctx, method, name):\n"
            "    if ctx.method.name == 'other':\n        return 1\n"
            "    if name in ('gradcam', 'x'):\n        return 2\n"
            "    return method.is_lrp or 'ae' != name\n")
    path = _package(tmp_path, {"m.py": code}) / "m.py"
    import tests.layout as layout

    old, layout.ROOT = layout.ROOT, tmp_path
    try:
        hits = method_branches(path, {"ae", "gradcam"})
    finally:
        layout.ROOT = old
    assert sorted(h.split(": ", 1)[1] for h in hits) == [
        "'ae' != name", "ctx.method.name == 'other'", "method.is_lrp",
        "name in ('gradcam', 'x')"]


#: Where op names belong besides the rules: the converters rewrite the model by op type, the
#: fp16 pass rewrites the explainer's own nodes (ops the rules emit, not the model's), and
#: ir/layout_ops.py is ONNX's shape semantics for the sample axis (ae-tokens T1: how each op
#: maps its inputs' dims to its outputs', like onnx's shape inference, including the ops with
#: no rule that compute shapes: Shape, ConstantOfShape, Equal, Where...).
OP_NAMES_ALLOWED = ("aeq_onnx.rules", "aeq_onnx.converters", "aeq_onnx.compile.precision",
                    "aeq_onnx.ir.layout_ops")


def test_no_op_lists_outside_the_rules() -> None:
    """What an op is (a layer, a pool, non-negative ...) is a trait on its rule class: no
    other stage compares a node's op type or lists op names (``ir`` asks ``view.traits``)."""
    ops = set(registry.supported_ops()) | {op for op, _ in registry.declarations()}
    found = [hit for name, path in modules().items()
             if not name.startswith(OP_NAMES_ALLOWED) for hit in op_questions(path, ops)]
    assert found == []


def test_the_op_question_finder_finds_questions(tmp_path: Path) -> None:
    code = ("LAYERS = frozenset({'Conv', 'Gemm'})\nOTHER = ('Foo', 'Bar')\n"
            "def f(node, view):\n    if node.op == 'Whatever':\n        return 1\n"
            "    return node.op in LAYERS or view.op_type in ('Relu',)\n")
    path = _package(tmp_path, {"m.py": code}) / "m.py"
    import tests.layout as layout

    old, layout.ROOT = layout.ROOT, tmp_path
    try:
        hits = op_questions(path, {"Conv", "Gemm", "Relu"})
    finally:
        layout.ROOT = old
    assert sorted(h.split(": ", 1)[1] for h in hits) == [
        "('Relu',)", "frozenset({'Conv', 'Gemm'})", "node.op == 'Whatever'",
        "node.op in LAYERS", "{'Conv', 'Gemm'}"]


#: How a benchmark figure reads in prose: a GPU's name, "1.6x faster", "12.5 ms",
#: "154 -> 83 MB", "3.7e-5 of max"; they go stale in the code and live in docs/performance.md.
FIGURE = re.compile(r"\bH100\b|\bA100\b|\d(?:\.\d+)?x (?:faster|slower)|~\d+(?:\.\d+)?x\b"
                    r"|\b\d+(?:\.\d+)? ?ms\b"
                    r"|\d+(?:\.\d+)? ?-> ?\d+(?:\.\d+)? ?(?:MB|GB|ms|s|nodes)\b"
                    r"|\d+(?:\.\d+)?e-\d+ of max|~\d+(?:\.\d+)? ?(?:MB|GB|ms|s)\b"
                    r"|\d+(?:\.\d+)? ?(?:MB|GB) per image")


def figures(text: str) -> list[str]:
    """The benchmark figures quoted in ``text``."""
    return [m.group(0) for m in FIGURE.finditer(text)]


def test_no_measured_figures_in_the_code() -> None:
    found = [f"{path.relative_to(ROOT)}: {hit}" for path in sorted(PACKAGE.rglob("*.py"))
             for hit in figures(path.read_text(encoding="utf-8"))]
    assert found == [], "move measured figures to docs/performance.md and point there"


def test_the_figure_finder_finds_figures() -> None:
    text = ("On an H100 it was 1.57x faster (22.9 ms); peak 154 -> 83 MB, 439 -> 388 nodes; "
            "moved 3.7e-5 of max; ~5x than Sign; ~94 MB; 36 MB per image. Not: 2**31 bytes, "
            "ratio 1.5, 27 MB smaller.")
    assert figures(text) == ["H100", "1.57x faster", "22.9 ms", "154 -> 83 MB",
                             "439 -> 388 nodes", "3.7e-5 of max", "~5x", "~94 MB",
                             "36 MB per image"]


# ---------------------------------------------------------------------- docs/architecture.md

#: ``aeq_onnx/x/y.py`` or ``aeq_onnx/x/`` quoted in the text, and ``x/``, ``y.py`` names in
#: the diagram (relative to ``aeq_onnx/``).
QUOTED = re.compile(r"`(aeq_onnx/[\w/]*?(?:\.py|/))`")
DIAGRAM = re.compile(r"^```text\n(.*?)^```", re.S | re.M)
DIAGRAM_NAME = re.compile(r"(?<![\w./-])(\w+(?:/\w+)*(?:/|\.py))(?![\w/])")


def architecture() -> tuple[list[str], list[str]]:
    """The quoted paths of the page and the names in its diagram."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    diagram = DIAGRAM.search(text)
    assert diagram is not None, "docs/architecture.md has no ```text diagram"
    return QUOTED.findall(text), DIAGRAM_NAME.findall(diagram.group(1))


def test_architecture_names_only_what_exists() -> None:
    quoted, drawn = architecture()
    assert len(quoted) > 20 and len(drawn) > 8
    missing = [p for p in quoted if not (ROOT / p).exists()]
    missing += [f"diagram: {n}" for n in drawn if not (PACKAGE / n).exists()]
    assert missing == []


def test_architecture_names_every_subpackage() -> None:
    quoted, drawn = architecture()
    named = {p.rstrip("/") for p in quoted} | {f"aeq_onnx/{n}".rstrip("/") for n in drawn}
    packages = sorted(str(p.parent.relative_to(ROOT)) for p in PACKAGE.rglob("__init__.py")
                      if p.parent != PACKAGE)
    assert [p for p in packages if p not in named] == []
    top = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert [p for p in top if f"{p}/" not in drawn] == [], "the diagram misses a stage"


def stages() -> list[str]:
    """The diagram's stages, top to bottom: the package names that start its lines."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    diagram = DIAGRAM.search(text)
    assert diagram is not None
    return re.findall(r"^ ([a-z_]+)/ ", diagram.group(1), re.M)


def test_a_stage_imports_only_the_stages_above_it() -> None:
    order = stages()
    top = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert sorted(order) == top

    def rank(module: str) -> int:
        parts = module.split(".")
        return order.index(parts[1]) if len(parts) > 1 and parts[1] in order else -1

    upward = sorted(f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
                    if "aeq_onnx" not in (m, t) and rank(t) > rank(m))
    assert upward == []


@pytest.mark.parametrize("name", ["ae", "gradcam"])
def test_the_page_names_the_module_of_a_method(name: str) -> None:
    """A sample of the rule: a method's module is on the page and exists."""
    quoted, _ = architecture()
    assert f"aeq_onnx/methods/{name}.py" in quoted


def test_no_symbolic_links_are_tracked() -> None:
    """A committed symlink (fixtures/.cache once pointed at one checkout) breaks clones."""
    import shutil
    import subprocess
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: nothing is tracked")
    listing = subprocess.run(["git", "ls-files", "-s"], cwd=root, check=True,
                             capture_output=True, text=True).stdout
    links = [line.split("\t", 1)[1] for line in listing.splitlines() if line.startswith("120000")]
    assert links == []
