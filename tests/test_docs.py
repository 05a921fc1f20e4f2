"""The docs hold together: a short README that opens with the two commands, relative links and
quoted repository paths that reach existing files, generated blocks where their writers look,
and ``docs/ops.md`` generated from the registry and up to date."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests import coverage_record, reliability
from tests.doc_blocks import DOCS, ROOT, has_block, replace_block

SCRIPT = ROOT / "scripts" / "gen_ops_doc.py"
README = ROOT / "README.md"
#: every Markdown page whose links and quoted paths are checked
PAGES = sorted([README, ROOT / "benchmarks" / "README.md", *DOCS.glob("*.md")])
#: written by scripts (held to the code by their own tests), not edited by hand
GENERATED = {DOCS / "coverage.md", DOCS / "ops.md"}
MAX_README_LINES = 200

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# a repository path quoted in backticks: `aeq_onnx/x.py`, `benchmarks/results/RESULTS.md`
QUOTED = re.compile(r"`((?:aeq_onnx|tests|benchmarks|scripts|fixtures|docs|examples|web)/"
                    r"[\w./-]*\.(?:py|md))`")


def prose(path: Path) -> str:
    """The page without its fenced code blocks (a link there is not a link)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown page's headings."""
    found = set()
    for line in prose(path).splitlines():
        if re.match(r"#{1,6} ", line):
            found.add(slug(line.lstrip("#")))
    return found


def broken_links(page: Path) -> list[str]:
    """Relative links of ``page`` whose file (or heading, for ``.md#anchor``) does not exist."""
    bad = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z][a-z+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            bad.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            bad.append(f"{target} (no such heading)")
    return bad


def test_ops_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_ops_doc", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run: python scripts/gen_ops_doc.py"
    text = module.OUT.read_text(encoding="utf-8")
    for op in ("Conv", "Gemm", "MaxPool", "Add", "Concat", "Mul", "Transpose"):
        assert f"| {op} |" in text


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines: move detail into docs/ and link it")


def test_readme_opens_with_the_two_commands() -> None:
    first, second = README.read_text(encoding="utf-8").splitlines()[:2]
    assert first.startswith("    make demo   # "), first
    assert second.startswith("    make test   # "), second


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_existing_files(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize("page", sorted(set(PAGES) - GENERATED),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_quoted_repository_paths_exist(page: Path) -> None:
    missing = [p for p in QUOTED.findall(page.read_text(encoding="utf-8"))
               if not (ROOT / p).exists()]
    assert missing == [], f"{page.name} quotes paths that do not exist: {missing}"


def test_readme_links_every_page_of_docs() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(prose(README))}
    assert sorted(p.name for p in DOCS.glob("*.md") if p.resolve() not in linked) == []


def test_the_checks_catch_a_broken_link_and_anchor(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# The *B* page: `x`, y\n\ntext\n", encoding="utf-8")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md) [ok](b.md#the-b-page-x-y) [web](https://example.org/x) "
                    "[gone](c.md) [bad](b.md#nope) [self](#here)\n\n```\n[code](d.md)\n```\n"
                    "## Here\n", encoding="utf-8")
    assert broken_links(page) == ["c.md (no such file)", "b.md#nope (no such heading)"]


def test_generated_blocks_live_where_their_writers_look() -> None:
    assert has_block(coverage_record.DOC, "coverage")
    assert has_block(reliability.DOC, "reliability")
    assert has_block(DOCS / "audit.md", "audit-demo")
    assert not has_block(README, "coverage") and not has_block(README, "reliability")


def test_replace_block_rewrites_only_between_its_markers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("head\n<!-- t:begin -->\nold\n<!-- t:end -->\ntail\n", encoding="utf-8")
    assert replace_block(doc, "t", "new") is True
    assert doc.read_text(encoding="utf-8") == "head\n<!-- t:begin -->\nnew\n<!-- t:end -->\ntail\n"
    assert replace_block(doc, "t", "new") is False  # unchanged
    assert replace_block(doc, "other", "x") is False  # no markers: left alone
    assert doc.read_text(encoding="utf-8").count("new") == 1
