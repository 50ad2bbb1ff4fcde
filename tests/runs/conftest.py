from collections.abc import Iterator

import pytest

from app.llm import openai_provider
from tests.loopback.fixtures import loopback_server, loopback_session_server

__all__ = ["loopback_server", "loopback_session_server"]


@pytest.fixture(autouse=True)
def _fresh_openai_clients() -> Iterator[None]:
    """Each test's worker runs its own event loop; a cached client is bound to a closed one."""
    openai_provider.client_for.cache_clear()
    yield
    openai_provider.client_for.cache_clear()
