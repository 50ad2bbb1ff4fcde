"""The loopback server itself: replies, scripted faults, counters, control endpoints."""

import asyncio
import time

import httpx
import pytest

from tests.loopback.server import LoopbackServer
from tests.loopback.state import reply_for, verdict_for


def chat(server: LoopbackServer, text: str, **extra: object) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=10)


def test_reply_is_deterministic_from_the_prompt(loopback_server: LoopbackServer) -> None:
    first = chat(loopback_server, "Is water wet?").json()
    second = chat(loopback_server, "Is water wet?").json()
    text = first["choices"][0]["message"]["content"]
    assert text == second["choices"][0]["message"]["content"]
    expected = "True." if verdict_for("Is water wet?") == "true" else "False."
    assert text.startswith(expected)
    assert first["usage"]["completion_tokens"] == len(text.split())


def test_both_verdicts_occur_and_reply_directive_wins() -> None:
    verdicts = {verdict_for(f"question {i}") for i in range(20)}
    assert verdicts == {"true", "false"}
    assert reply_for([{"role": "user", "content": "x [[reply: Yes, indeed.]]"}]) == "Yes, indeed."
    assert reply_for([{"role": "user", "content": "x"}], "true").startswith("True.")


def test_script_is_served_in_order_then_ok(loopback_server: LoopbackServer) -> None:
    loopback_server.configure(retry_after=7)
    loopback_server.script(["429", "500", "malformed", "bad_shape", "html"])
    limited = chat(loopback_server, "a")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert chat(loopback_server, "a").status_code == 500
    malformed = chat(loopback_server, "a")
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    assert "choices" not in chat(loopback_server, "a").json()
    assert chat(loopback_server, "a").headers["content-type"].startswith("text/html")
    assert chat(loopback_server, "a").json()["choices"]
    stats = loopback_server.stats()
    assert stats["calls"]["chat"] == 6
    assert stats["faults"] == {
        "429": 1,
        "500": 1,
        "malformed": 1,
        "bad_shape": 1,
        "html": 1,
        "ok": 1,
    }


def test_fault_rates_are_reproducible(loopback_server: LoopbackServer) -> None:
    def draw() -> list[int]:
        loopback_server.reset()
        loopback_server.configure(fault_rates={"500": 0.3}, fault_seed=5)
        return [chat(loopback_server, f"q{i}").status_code for i in range(30)]

    first = draw()
    assert first == draw()
    assert 500 in first and 200 in first


def test_unknown_settings_and_faults_are_refused(loopback_server: LoopbackServer) -> None:
    with pytest.raises(ValueError, match="unknown loopback setting"):
        loopback_server.configure(latency=1)
    with pytest.raises(ValueError, match="unknown faults"):
        loopback_server.script(["418"])


def test_api_key_is_checked(loopback_server: LoopbackServer) -> None:
    loopback_server.configure(api_key="sk-right")
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    url = f"{loopback_server.base_url}/chat/completions"
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer no"}).status_code == 401
    ok = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-right"})
    assert ok.status_code == 200


def test_counts_concurrent_requests(loopback_server: LoopbackServer) -> None:
    loopback_server.configure(latency_s=0.3)

    async def burst() -> None:
        async with httpx.AsyncClient(base_url=loopback_server.base_url, timeout=10) as client:
            body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
            await asyncio.gather(*(client.post("/chat/completions", json=body) for _ in range(8)))

    asyncio.run(burst())
    stats = loopback_server.stats()
    assert stats["calls"]["chat"] == 8
    assert stats["max_in_flight"] >= 2
    # Requests left running by an earlier test (a cancelled client) end within their latency.
    deadline = time.monotonic() + 10
    while loopback_server.stats()["in_flight"] != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loopback_server.stats()["in_flight"] == 0


def test_reset_restores_defaults(loopback_server: LoopbackServer) -> None:
    loopback_server.configure(latency_s=1.5, reply_mode="true")
    loopback_server.script(["500"])
    loopback_server.reset()
    assert loopback_server.stats()["script_left"] == 0
    assert loopback_server.configure()["latency_s"] == 0.0


@pytest.mark.slow
def test_subprocess_server_answers() -> None:
    server = LoopbackServer.in_subprocess(reply_mode="false")
    try:
        assert chat(server, "x").json()["choices"][0]["message"]["content"].startswith("False.")
        assert server.stats()["calls"]["chat"] == 1
    finally:
        server.stop()
