"""The only code that talks to a model.

``complete(spec, messages)`` sends one chat to the provider named by ``spec.provider`` and
returns a Completion, or raises LlmError (``retryable`` tells the queue whether to try again).
"""

from app.llm.cache import cache_key
from app.llm.pricing import cost_usd
from app.llm.types import Completion, LlmError, ModelSpec

__all__ = [
    "Completion",
    "LlmError",
    "ModelSpec",
    "build_messages",
    "cache_key",
    "complete",
    "cost_usd",
]


def build_messages(spec: ModelSpec, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The full chat sent to the model: system prompt, SDI prefix turns, then the prompt."""
    full: list[dict[str, str]] = []
    if spec.system_prompt:
        full.append({"role": "system", "content": spec.system_prompt})
    full.extend(dict(m) for m in spec.prefix_messages)
    full.extend(messages)
    return full


def effective_seed(spec: ModelSpec, sample_index: int) -> int | None:
    return None if spec.seed is None else spec.seed + sample_index


async def complete(
    spec: ModelSpec, messages: list[dict[str, str]], *, sample_index: int = 0
) -> Completion:
    """One chat completion. Raises LlmError; never retries by itself."""
    full = build_messages(spec, messages)
    seed = effective_seed(spec, sample_index)
    if spec.provider == "openai":
        from app.llm import openai_provider

        return await openai_provider.complete(spec, full, seed=seed)
    if spec.provider == "local":
        from app.llm import local

        return await local.complete(spec, full, seed=seed)
    if spec.provider == "trained":
        from app.llm import trained

        return await trained.complete(spec, full, seed=seed)
    raise LlmError(f"unknown provider {spec.provider!r}", retryable=False)
