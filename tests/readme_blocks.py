"""Blocks of README.md written by the test run, between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` markers (the reliability and coverage tables)."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of block ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_block(name: str, body: str, readme: Path = README) -> bool:
    """Put ``body`` between the markers of ``name``; True when the file changed."""
    begin, end = markers(name)
    text = readme.read_text()
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        return False
    new = f"{text[:start]}{begin}\n{body}\n{text[stop:]}"
    if new == text:
        return False
    readme.write_text(new)
    return True
