"""Models trained locally by sdilab (app/training), offline.

``spec.model_id`` is the merged model's path, relative to the data directory unless absolute:
a GGUF file (the usual case: llama.cpp generates with it, through the local provider) or a
transformers directory (generated with transformers on the CPU; needs the `train` extra).
"""

import asyncio
import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.config import get_settings
from app.llm import local
from app.llm.types import Completion, LlmError, ModelSpec

_load_lock = threading.Lock()
_generate_lock = threading.Lock()


def resolve_path(model_id: str) -> Path:
    if not model_id:
        raise LlmError("a trained model needs its path as model id", retryable=False)
    path = Path(model_id).expanduser()
    if not path.is_absolute():
        path = get_settings().data_dir / path
    if not path.exists():
        raise LlmError(f"trained model not found: {path}", retryable=False)
    return path


def generate(spec: ModelSpec, messages: list[dict[str, str]], seed: int | None) -> Completion:
    path = resolve_path(spec.model_id)
    if path.is_file() and path.suffix == ".gguf":
        return local.generate(spec.model_copy(update={"model_id": str(path)}), messages, seed)
    if path.is_dir():
        return _generate_transformers(spec, str(path), messages, seed)
    raise LlmError(f"not a GGUF file or a model directory: {path}", retryable=False)


@lru_cache(maxsize=2)
def _load_transformers(path: str) -> tuple[Any, Any]:
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[key] = "1"
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise LlmError(
            "this trained model is a transformers directory: install the train extra "
            "(pip install -e '.[train]')",
            retryable=False,
        ) from None
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def _generate_transformers(
    spec: ModelSpec, path: str, messages: list[dict[str, str]], seed: int | None
) -> Completion:
    import torch

    with _load_lock:
        model, tokenizer = _load_transformers(path)
    started = time.perf_counter()
    with _generate_lock:
        ids = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        sampling = spec.temperature > 0
        if sampling and seed is not None:
            torch.manual_seed(seed)
        options: dict[str, Any] = {"max_new_tokens": spec.max_tokens, "do_sample": sampling}
        if sampling:
            options.update(temperature=spec.temperature, top_p=spec.top_p)
        with torch.no_grad():
            out = model.generate(
                **ids, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id, **options
            )
    new = out[0][ids["input_ids"].shape[1] :]
    finished = bool(len(new)) and int(new[-1]) == tokenizer.eos_token_id
    return Completion(
        text=tokenizer.decode(new, skip_special_tokens=True).strip(),
        tokens_in=int(ids["input_ids"].shape[1]),
        tokens_out=len(new),
        finish_reason="stop" if finished else "length",
        latency_ms=int((time.perf_counter() - started) * 1000),
    )


async def complete(
    spec: ModelSpec, messages: list[dict[str, str]], *, seed: int | None
) -> Completion:
    return await asyncio.to_thread(generate, spec, messages, seed)
