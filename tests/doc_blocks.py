"""Blocks of the docs written by the test run, between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` markers: the coverage table (``docs/coverage-tests.md``) and the
reliability table (``docs/reliability.md``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of block ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def has_block(path: Path, name: str) -> bool:
    """Whether ``path`` holds the begin marker of ``name`` followed by its end marker."""
    begin, end = markers(name)
    text = path.read_text(encoding="utf-8")
    start = text.find(begin)
    return start >= 0 and text.find(end, start) > start


def replace_block(path: Path, name: str, body: str) -> bool:
    """Put ``body`` between the markers of ``name`` in ``path``; True when the file changed.

    A file without both markers (in order) is left alone."""
    begin, end = markers(name)
    text = path.read_text(encoding="utf-8")
    start = text.find(begin)
    stop = text.find(end, start) if start >= 0 else -1
    if start < 0 or stop < start:
        return False
    new = f"{text[:start]}{begin}\n{body}\n{text[stop:]}"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True
