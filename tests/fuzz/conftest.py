"""Prints the schemathesis run's figures (operations, requests, server errors) after the tests."""

import pytest

from tests.fuzz.figures import FUZZ


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FUZZ.requests:
        terminalreporter.write_line(FUZZ.line())
