"""The loopback server's settings, fault plan and counters (one object per server)."""

import hashlib
import random
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

# What a scripted or random fault can be. "ok" answers normally.
FAULTS = (
    "ok",
    "429",  # rate limited, with a Retry-After header
    "503",  # overloaded, with a Retry-After header
    "500",
    "400",
    "401",
    "404",
    "timeout",  # sleeps past the client's timeout (timeout_sleep_s), then answers
    "malformed",  # 200 with a body that is not JSON, declared as application/json
    "bad_shape",  # 200 with valid JSON that is not a chat completion
    "html",  # 200 with an HTML page (a proxy error page)
)

SETTINGS = (
    "latency_s",
    "jitter_s",
    "fault_rates",
    "fault_seed",
    "retry_after",
    "timeout_sleep_s",
    "reply_mode",
    "api_key",
    "batch_delay_s",
    "batch_line_error_rate",
)


def reply_for(messages: list[dict[str, Any]], mode: str = "hash") -> str:
    """The deterministic reply to a chat, so tests can predict verdicts.

    A last user message containing ``[[reply: TEXT]]`` gets TEXT back. Otherwise, mode "hash"
    answers "True. ..." or "False. ..." from the parity of the message's sha256 (see
    ``verdict_for``); modes "true" and "false" always answer that; "echo" returns the message.
    """
    last = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            last = str(message.get("content", ""))
            break
    if "[[reply:" in last:
        start = last.index("[[reply:") + len("[[reply:")
        end = last.find("]]", start)
        return last[start : end if end != -1 else None].strip()
    if mode == "echo":
        return last
    verdict = mode if mode in ("true", "false") else verdict_for(last)
    if verdict == "true":
        return "True. That statement is correct."
    return "False. That statement is not correct."


def verdict_for(user_text: str) -> str:
    """What mode "hash" answers to a user message: "true" or "false"."""
    digest = hashlib.sha256(user_text.encode("utf-8")).digest()
    return "true" if digest[0] % 2 == 0 else "false"


@dataclass
class LoopbackState:
    latency_s: float = 0.0
    jitter_s: float = 0.0
    # Probability of each fault per chat request, e.g. {"429": 0.05, "500": 0.02}.
    fault_rates: dict[str, float] = field(default_factory=dict)
    fault_seed: int = 0
    retry_after: float = 1.0
    timeout_sleep_s: float = 30.0
    reply_mode: str = "hash"
    # When set, requests must send "Authorization: Bearer <api_key>" (else 401).
    api_key: str = ""
    batch_delay_s: float = 0.0
    batch_line_error_rate: float = 0.0

    script: deque[str] = field(default_factory=deque)
    calls: Counter[str] = field(default_factory=Counter)
    faults_served: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20_000))
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Room for extension routers (e.g. fine-tuning jobs), emptied by reset().
    ext: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.fault_seed)
        self._lock = threading.Lock()

    def configure(self, **settings: Any) -> None:
        for key, value in settings.items():
            if key not in SETTINGS:
                raise ValueError(f"unknown loopback setting {key!r}; one of {SETTINGS}")
            if key == "fault_rates":
                unknown = set(value) - set(FAULTS)
                if unknown:
                    raise ValueError(f"unknown faults {sorted(unknown)}; one of {FAULTS}")
            setattr(self, key, value)
        if "fault_seed" in settings:
            self._rng = random.Random(self.fault_seed)

    def add_script(self, faults: list[str]) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; one of {FAULTS}")
        with self._lock:
            self.script.extend(faults)

    def next_fault(self) -> str:
        """The scripted fault if any is queued, else one drawn from fault_rates."""
        with self._lock:
            if self.script:
                return self.script.popleft()
            draw = self._rng.random()
        for name, rate in self.fault_rates.items():
            if draw < rate:
                return name
            draw -= rate
        return "ok"

    def reset(self) -> None:
        fresh = LoopbackState()
        for key in SETTINGS:
            setattr(self, key, getattr(fresh, key))
        self._rng = random.Random(self.fault_seed)
        self.script.clear()
        self.calls.clear()
        self.faults_served.clear()
        # in_flight is a live gauge: a previous test's request may still be running (it would
        # decrement a zeroed gauge below 0 when it ends).
        self.max_in_flight = self.in_flight
        self.requests.clear()
        self.files.clear()
        self.batches.clear()
        self.ext.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "faults": dict(self.faults_served),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "script_left": len(self.script),
        }

    def settings(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SETTINGS}
