"""Cost from prices per 1k tokens; the cache key covers exactly what changes the output."""

import pytest

from app.llm import ModelSpec, cache_key, cost_usd

BASE = ModelSpec(
    name="m",
    provider="openai",
    model_id="gpt-x",
    price_input_per_1k=0.5,
    price_output_per_1k=1.5,
)
MESSAGES = [{"role": "user", "content": "Is the sky blue?"}]


def test_cost() -> None:
    assert cost_usd(BASE, 2000, 1000) == pytest.approx(2.5)
    assert cost_usd(BASE, 0, 0) == 0.0
    assert cost_usd(ModelSpec(name="free", provider="local"), 10_000, 10_000) == 0.0


def test_cache_key_is_stable_and_hex() -> None:
    key = cache_key(BASE, MESSAGES, 0)
    assert key == cache_key(BASE.model_copy(), [dict(m) for m in MESSAGES], 0)
    assert len(key) == 64
    int(key, 16)


@pytest.mark.parametrize(
    "change",
    [
        {"model_id": "gpt-y"},
        {"provider": "local"},
        {"base_url": "http://other/v1"},
        {"temperature": 0.5},
        {"max_tokens": 12},
        {"top_p": 0.5},
        {"seed": 1},
        {"seed": None},
        {"system_prompt": "Be brief."},
        {"prefix_messages": ({"role": "user", "content": "hi"},)},
        {"extra": {"stop": ["\n"]}},
    ],
)
def test_cache_key_changes_with_what_changes_the_output(change: dict[str, object]) -> None:
    assert cache_key(BASE.model_copy(update=change), MESSAGES, 0) != cache_key(BASE, MESSAGES, 0)


def test_cache_key_changes_with_messages_and_sample() -> None:
    key = cache_key(BASE, MESSAGES, 0)
    assert cache_key(BASE, MESSAGES, 1) != key
    assert cache_key(BASE, [{"role": "user", "content": "Is the sky red?"}], 0) != key


@pytest.mark.parametrize(
    "change",
    [
        {"name": "renamed"},
        {"price_input_per_1k": 9.0},
        {"price_output_per_1k": 9.0},
        {"timeout_s": 5.0},
        {"api_key_env": "OTHER_KEY"},
    ],
)
def test_cache_key_ignores_name_prices_timeout_and_key_variable(
    change: dict[str, object],
) -> None:
    assert cache_key(BASE.model_copy(update=change), MESSAGES, 0) == cache_key(BASE, MESSAGES, 0)
