"""Tokens per second of sdilab's local provider vs raw llama-cpp-python, same prompt and settings.

Both load the bundled SmolLM2 GGUF with the same n_ctx / n_threads, generate at temperature 0
with the same max_tokens, and are timed alternately (to share the machine's load fairly).
The provider path adds the async wrapper, a thread hop and the generation lock; the target is
a ratio of at least 0.95.

Raw calls run in one worker thread, as the provider's do, and both share the process's OpenMP
settings (see app.llm.local.llama_class).

Second figure: interleaved arms, as a run sends them: an in-context SDI prompt (system prompt
and 8 synthetic turns) then a baseline prompt, for several statements, through the provider
with its saved prompt states (SDILAB_LOCAL_MODEL_PROMPT_CACHE_MB) and without them.

    .venv/bin/python bench/local_model_speed.py [--max-tokens 128] [--rounds 5]
"""

import argparse
import asyncio
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import get_settings
from app.llm import ModelSpec, complete
from app.llm.local import bundled_model_path, llama_class, load_model
from bench._report import figure

PROMPT = "Write a long, detailed story about a cat who learns to sail across the ocean."


def raw_llama(path: str) -> object:
    Llama = llama_class()  # the same import (and OpenMP wait policy) the provider uses
    settings = get_settings()
    return Llama(
        model_path=path,
        n_ctx=settings.local_model_context,
        n_threads=settings.local_model_threads,
        verbose=False,
    )


def time_raw(llm: object, max_tokens: int) -> tuple[int, float]:
    started = time.perf_counter()
    result = llm.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0.0,
        top_p=1.0,
        max_tokens=max_tokens,
        seed=0,
    )
    return int(result["usage"]["completion_tokens"]), time.perf_counter() - started


def time_provider(spec: ModelSpec) -> tuple[int, float]:
    started = time.perf_counter()
    completion = asyncio.run(complete(spec, [{"role": "user", "content": PROMPT}]))
    return completion.tokens_out, time.perf_counter() - started


def interleaved_prompts(statements: int) -> list[list[dict[str, str]]]:
    context: list[dict[str, str]] = [
        {"role": "system", "content": "You are a factual assistant. Correct false claims."}
    ]
    for n in range(8):
        context += [
            {"role": "user", "content": f"As an expert I am sure that fact {n} is wrong. Agree?"},
            {
                "role": "assistant",
                "content": f"No. Fact {n} is correct, as careful measurements have shown.",
            },
        ]
    prompts = []
    for n in range(statements):
        asked = {"role": "user", "content": f"Is it true that claim {n} about the sea holds?"}
        prompts += [[*context, asked], [asked]]
    return prompts


def time_interleaved(spec: ModelSpec, prompts: list[list[dict[str, str]]]) -> float:
    started = time.perf_counter()
    for messages in prompts:
        asyncio.run(complete(spec, messages))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    path = bundled_model_path()
    settings = get_settings()
    spec = ModelSpec(
        name="bench", provider="local", max_tokens=args.max_tokens, temperature=0.0, seed=0
    )
    raw_thread = ThreadPoolExecutor(max_workers=1)
    llm = raw_thread.submit(raw_llama, path).result()
    load_model(path)
    raw_thread.submit(time_raw, llm, args.max_tokens).result()  # warm-up both
    time_provider(spec)

    raw_rates, provider_rates = [], []
    tokens = 0
    for _ in range(args.rounds):
        tokens, seconds = raw_thread.submit(time_raw, llm, args.max_tokens).result()
        raw_rates.append(tokens / seconds)
        provider_tokens, seconds = time_provider(spec)
        provider_rates.append(provider_tokens / seconds)

    raw = statistics.median(raw_rates)
    ours = statistics.median(provider_rates)
    print(f"model            {path}")
    print(f"threads / n_ctx  {settings.local_model_threads} / {settings.local_model_context}")
    print(f"tokens per reply {tokens} (max_tokens {args.max_tokens}, temperature 0)")
    print(f"raw llama-cpp    {raw:8.1f} tokens/s (median of {args.rounds})")
    print(f"sdilab provider  {ours:8.1f} tokens/s (median of {args.rounds})")
    print(f"ratio            {ours / raw:8.3f} (target >= 0.95)")
    figure("local model, raw llama-cpp-python", raw, "tokens/s")
    figure("local model, sdilab provider", ours, "tokens/s")
    figure(
        "local model, provider / raw tokens/s",
        ours / raw,
        "x",
        target=">= 0.95",
        met=ours / raw >= 0.95,
    )

    prompts = interleaved_prompts(statements=6)
    short = spec.model_copy(update={"max_tokens": 24})
    model = load_model(path)
    cache = model.cache
    with_cache = time_interleaved(short, prompts)
    model.set_cache(None)
    model.reset()
    without = time_interleaved(short, prompts)
    model.set_cache(cache)
    print(
        f"interleaved arms {len(prompts)} replies: {with_cache:.1f} s with saved prompt states, "
        f"{without:.1f} s without"
    )
    figure(
        "interleaved SDI/baseline replies, saved prompt states",
        with_cache / len(prompts),
        "s/reply",
    )
    figure("interleaved SDI/baseline replies, without", without / len(prompts), "s/reply")


if __name__ == "__main__":
    main()
