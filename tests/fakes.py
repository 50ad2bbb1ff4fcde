"""An in-process model at the boundary of app.llm, for tests about what sdilab does with
replies rather than how it talks HTTP (those use the loopback server, tests/loopback)."""

import threading
from collections.abc import Callable, Iterator

import pytest

from app import llm
from app.llm.types import Completion, LlmError, ModelSpec

Chat = list[dict[str, str]]


class FakeModel:
    """Stands in for ``app.llm.complete``: answers each chat with ``reply(spec, chat)`` (the
    chat as the model would see it: system prompt and SDI turns included) and records it.
    ``fail_next(n)`` makes the next n calls raise a retryable error."""

    def __init__(self, reply: Callable[[ModelSpec, Chat], str] | None = None) -> None:
        self.reply = reply or (lambda _spec, chat: f"True. You asked: {chat[-1]['content']}")
        self.calls: list[tuple[ModelSpec, Chat]] = []
        self._failures = 0
        self._lock = threading.Lock()

    def fail_next(self, n: int) -> None:
        self._failures = n

    async def complete(
        self, spec: ModelSpec, messages: Chat, *, sample_index: int = 0
    ) -> Completion:
        chat = llm.build_messages(spec, messages)
        with self._lock:
            self.calls.append((spec, chat))
            if self._failures:
                self._failures -= 1
                raise LlmError("fake 500", retryable=True, retry_after=0.01)
        text = self.reply(spec, chat)
        return Completion(text=text, tokens_in=len(str(chat)) // 4, tokens_out=len(text) // 4)

    def chats(self) -> list[Chat]:
        return [chat for _spec, chat in self.calls]


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeModel]:
    """Every model call in this process answered by a FakeModel."""
    model = FakeModel()
    monkeypatch.setattr(llm, "complete", model.complete)
    yield model
