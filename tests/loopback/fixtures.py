"""Pytest fixtures for the loopback server (registered for all tests in tests/conftest.py)."""

from collections.abc import Iterator

import pytest

from tests.loopback.server import LoopbackServer


@pytest.fixture(scope="session")
def loopback_session_server() -> Iterator[LoopbackServer]:
    """One loopback server (in a thread) for the whole session."""
    server = LoopbackServer.in_thread()
    yield server
    server.stop()


@pytest.fixture
def loopback_server(loopback_session_server: LoopbackServer) -> Iterator[LoopbackServer]:
    """The loopback server, reset to defaults (no latency, no faults) for this test."""
    loopback_session_server.reset()
    yield loopback_session_server
    loopback_session_server.reset()
