"""The openai provider against the loopback server: requests, replies, and error mapping."""

import pytest

from app.llm import Completion, LlmError, ModelSpec, complete
from app.models import Verdict
from app.verdicts import parse_verdict
from tests.loopback.server import LoopbackServer, free_port
from tests.loopback.state import verdict_for

CANARY = "sk-canary-7f3a9c1e5b2d4f6a8c0e"
KEY_ENV = "SDILAB_TEST_CANARY_KEY"


def spec_for(server: LoopbackServer, **fields: object) -> ModelSpec:
    values: dict[str, object] = {
        "name": "loop",
        "provider": "openai",
        "model_id": "loop-model",
        "base_url": server.base_url,
        "api_key_env": KEY_ENV,
        "timeout_s": 5.0,
    }
    values.update(fields)
    return ModelSpec.model_validate(values)


@pytest.fixture(autouse=True)
def canary_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call carries a recognisable key, so tests can check it never leaks."""
    monkeypatch.setenv(KEY_ENV, CANARY)


async def fail(spec: ModelSpec, text: str = "hello") -> LlmError:
    with pytest.raises(LlmError) as caught:
        await complete(spec, [{"role": "user", "content": text}])
    assert CANARY not in str(caught.value)
    return caught.value


@pytest.mark.asyncio
async def test_reply_tokens_and_verdict(loopback_server: LoopbackServer) -> None:
    prompt = "Is the sky blue?"
    result = await complete(spec_for(loopback_server), [{"role": "user", "content": prompt}])
    assert isinstance(result, Completion)
    assert parse_verdict(result.text) == Verdict(verdict_for(prompt))
    assert result.tokens_out == len(result.text.split())
    assert result.tokens_in > 0
    assert result.finish_reason == "stop"
    assert result.latency_ms >= 0


@pytest.mark.asyncio
async def test_request_carries_settings_prefix_and_seed(loopback_server: LoopbackServer) -> None:
    spec = spec_for(
        loopback_server,
        temperature=0.7,
        top_p=0.9,
        max_tokens=33,
        seed=100,
        system_prompt="Be brief.",
        prefix_messages=(
            {"role": "user", "content": "Is fire cold?"},
            {"role": "assistant", "content": "No."},
        ),
    )
    await complete(spec, [{"role": "user", "content": "Q"}], sample_index=3)
    [body] = loopback_server.requests()
    assert body["model"] == "loop-model"
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.9, 33)
    assert body["seed"] == 103
    assert [m["content"] for m in body["messages"]] == ["Be brief.", "Is fire cold?", "No.", "Q"]
    assert body["messages"][0]["role"] == "system"


@pytest.mark.asyncio
async def test_no_seed_is_sent_when_seed_is_none(loopback_server: LoopbackServer) -> None:
    await complete(spec_for(loopback_server, seed=None), [{"role": "user", "content": "Q"}])
    assert "seed" not in loopback_server.requests()[0]


@pytest.mark.asyncio
async def test_length_finish_reason(loopback_server: LoopbackServer) -> None:
    result = await complete(
        spec_for(loopback_server, max_tokens=2), [{"role": "user", "content": "Q"}]
    )
    assert result.finish_reason == "length"
    assert result.tokens_out == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("status", ["429", "503"])
async def test_rate_limits_are_retryable_with_retry_after(
    loopback_server: LoopbackServer, status: str
) -> None:
    loopback_server.configure(retry_after=3.5)
    loopback_server.script([status])
    error = await fail(spec_for(loopback_server))
    assert error.retryable
    assert error.retry_after == 3.5
    assert status in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["500", "malformed", "bad_shape", "html"])
async def test_server_errors_and_garbled_bodies_are_retryable(
    loopback_server: LoopbackServer, fault: str
) -> None:
    loopback_server.script([fault])
    error = await fail(spec_for(loopback_server))
    assert error.retryable
    assert error.retry_after is None


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["400", "401", "404"])
async def test_client_errors_are_not_retryable(loopback_server: LoopbackServer, fault: str) -> None:
    loopback_server.script([fault])
    error = await fail(spec_for(loopback_server))
    assert not error.retryable
    assert fault in str(error)


@pytest.mark.asyncio
async def test_timeout_is_retryable(loopback_server: LoopbackServer) -> None:
    loopback_server.configure(timeout_sleep_s=3.0)
    loopback_server.script(["timeout"])
    error = await fail(spec_for(loopback_server, timeout_s=0.3))
    assert error.retryable
    assert "timed out" in str(error)


@pytest.mark.asyncio
async def test_wrong_key_is_scrubbed_from_the_error(loopback_server: LoopbackServer) -> None:
    # The server repeats the Authorization header in its 401 message.
    loopback_server.configure(api_key="sk-the-right-one")
    error = await fail(spec_for(loopback_server))
    assert not error.retryable
    assert "401" in str(error)
    assert "***" in str(error)


@pytest.mark.asyncio
async def test_key_is_sent_when_right(loopback_server: LoopbackServer) -> None:
    loopback_server.configure(api_key=CANARY)
    result = await complete(spec_for(loopback_server), [{"role": "user", "content": "x"}])
    assert result.text


@pytest.mark.asyncio
async def test_missing_key_variable_names_the_variable(
    loopback_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    error = await fail(spec_for(loopback_server))
    assert not error.retryable
    assert KEY_ENV in str(error)
    assert loopback_server.stats()["calls"].get("chat", 0) == 0


@pytest.mark.asyncio
async def test_connection_refused_is_retryable() -> None:
    spec = ModelSpec(
        name="gone",
        provider="openai",
        model_id="m",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        timeout_s=2.0,
    )
    with pytest.raises(LlmError) as caught:
        await complete(spec, [{"role": "user", "content": "x"}])
    assert caught.value.retryable


@pytest.mark.asyncio
async def test_openai_provider_needs_a_model_id(loopback_server: LoopbackServer) -> None:
    error = await fail(spec_for(loopback_server, model_id=""))
    assert not error.retryable


@pytest.mark.asyncio
async def test_trained_and_unknown_providers_fail_clearly() -> None:
    for provider in ("trained", "nonsense"):
        with pytest.raises(LlmError) as caught:
            await complete(ModelSpec(name="t", provider=provider), [])
        assert not caught.value.retryable
        assert provider in str(caught.value)
