"""Test-suite root. Its presence puts ``tests/`` on ``sys.path`` (pytest's default import mode),
so test files in sub-folders can ``import helpers`` (``tests.reference`` is imported by its full
name: its op registry must exist once).

It also collects what the docs state from the test run: the reliability figures
(``tests/reliability.py``, ``docs/reliability.md``) and the architecture coverage table
(``tests/coverage_record.py``, ``docs/coverage-tests.md``); after a run that included the tests
behind a table, that table is rewritten."""

from __future__ import annotations

import pytest

from tests import coverage_record, reliability


def _outcome(report: pytest.TestReport) -> str:
    return "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count security-test and model-test outcomes (a failed setup counts as failed)."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        reliability.record(report.nodeid, report.outcome)
        if report.nodeid.startswith("tests/models/"):
            coverage_record.record(report.nodeid, report.user_properties, _outcome(report))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the tables and refresh the docs with those this run completed."""
    for name, table in (("reliability", reliability), ("coverage", coverage_record)):
        if table.complete():
            changed = table.update_doc()
            where = table.DOC.relative_to(table.DOC.parents[1])
            terminalreporter.write_line(
                f"{name} table ({where} {'updated' if changed else 'unchanged'}):")
            terminalreporter.write_line(table.render())
