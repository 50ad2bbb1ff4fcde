from collections.abc import Iterator

import httpx
import pytest

from tests.loopback.server import LoopbackServer


@pytest.fixture(scope="module")
def ft_server() -> Iterator[LoopbackServer]:
    """A loopback OpenAI-compatible server (files + fine-tuning) in a thread."""
    server = LoopbackServer.in_thread()
    yield server
    server.stop()


@pytest.fixture
def loopback(ft_server: LoopbackServer) -> Iterator[LoopbackServer]:
    """The server reset to defaults: jobs succeed after two polls while running."""
    ft_server.reset()
    yield ft_server
    ft_server.reset()


def configure_finetune(server: LoopbackServer, **settings: object) -> None:
    httpx.post(f"{server.url}/_control/finetune", json=settings).raise_for_status()
