"""LoRA fine-tuning on the CPU with PyTorch, transformers and peft (the optional `train` extra).

Nothing here touches the database: the service hands in chat examples and callbacks, and gets
progress and file paths back. torch, transformers and peft are imported inside the functions,
so the rest of sdilab runs without them. Nothing is ever downloaded: the base model is a local
GGUF file (transformers dequantises it) or a local transformers directory.
"""

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.training.batches import batch_loss, batches_of, collate, encode_all, evaluate
from app.training.gguf_export import PERMUTED_QK_ARCHS, export_gguf, gguf_arch
from app.training.loading import BaseModelRef, load_base, require_packages, resolve_base
from app.training.schemas import TrainingError, TrainingParams


class Cancelled(Exception):
    """The run was cancelled between two steps."""


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: int
    train_loss: float | None
    val_loss: float | None
    tokens_per_s: float | None
    examples_per_s: float | None
    eta_s: float | None
    new_points: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    output_dir: str
    adapter_dir: str
    merged_path: str
    merged_format: str  # "gguf" | "hf"
    steps: int
    n_train: int
    n_val: int
    skipped: int
    train_tokens: int
    seconds: float
    initial_val_loss: float | None
    final_train_loss: float | None
    final_val_loss: float | None
    history: list[dict[str, Any]]


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _lr_lambda(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        remaining = max(1, total_steps - warmup)
        return max(0.0, 1.0 - (step - warmup) / remaining)

    return factor


def add_lora(model: Any, params: TrainingParams) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=params.rank,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=list(params.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def train(
    *,
    base_model: str,
    params: TrainingParams,
    train_examples: Sequence[Sequence[dict[str, Any]]],
    val_examples: Sequence[Sequence[dict[str, Any]]],
    output_dir: Path,
    name: str,
    on_progress: Callable[[Progress], None] = lambda _p: None,
    should_cancel: Callable[[], bool] = lambda: False,
    metadata: dict[str, Any] | None = None,
    export: bool = True,
) -> TrainResult:
    """Fine-tune a LoRA adapter, save it with its exact configuration, merge it into the base
    weights and export the merged model (GGUF when the base is one, else a transformers dir)."""
    require_packages()
    import torch

    started = time.perf_counter()
    if params.threads:
        torch.set_num_threads(params.threads)
    ref = resolve_base(base_model)
    model, tokenizer = load_base(ref)
    train_items, skipped = encode_all(
        tokenizer, _limit(train_examples, params.max_train_examples), params.max_length
    )
    val_items, skipped_val = encode_all(
        tokenizer, _limit(val_examples, params.max_val_examples), params.max_length
    )
    if not train_items:
        raise TrainingError("no training example fits (empty train split or max length too short)")

    seed_everything(params.seed)
    model = add_lora(model, params)
    pad_id = int(tokenizer.pad_token_id)
    steps_per_epoch = math.ceil(len(train_items) / params.batch_size)
    total_steps = steps_per_epoch * params.epochs
    if params.max_steps:
        total_steps = min(total_steps, params.max_steps)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=params.learning_rate,
        weight_decay=params.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total_steps, params.warmup_ratio)
    )
    val_batches = batches_of(val_items, params.batch_size, pad_id)
    history: list[dict[str, Any]] = []
    initial_val = evaluate(model, val_batches)
    if initial_val is not None:
        history.append({"step": 0, "val_loss": initial_val})
    on_progress(Progress(0, total_steps, 0, None, initial_val, None, None, None, list(history)))

    # Keep the chart's history small: one averaged train point per `log_every` steps.
    log_every = max(1, total_steps // 200)
    step, tokens_seen, examples_seen = 0, 0, 0
    window_loss, window_tokens, last_train = 0.0, 0, None
    val_loss = initial_val
    train_started = time.perf_counter()
    model.train()
    done = False
    for epoch in range(1, params.epochs + 1):
        order = torch.randperm(
            len(train_items), generator=torch.Generator().manual_seed(params.seed + epoch)
        ).tolist()
        for i in range(0, len(order), params.batch_size):
            if should_cancel():
                raise Cancelled("cancelled")
            batch = collate([train_items[j] for j in order[i : i + params.batch_size]], pad_id)
            loss_sum, count = batch_loss(model, batch)
            (loss_sum / max(1, count)).backward()
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], params.max_grad_norm
            )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += int(batch["attention_mask"].sum())
            examples_seen += int(batch["input_ids"].shape[0])
            window_loss += loss_sum.item()
            window_tokens += count
            points: list[dict[str, Any]] = []
            if step % log_every == 0 or step == total_steps:
                last_train = window_loss / max(1, window_tokens)
                points.append({"step": step, "train_loss": last_train})
                window_loss, window_tokens = 0.0, 0
            end_of_epoch = i + params.batch_size >= len(order)
            done = step >= total_steps
            if val_batches and (
                end_of_epoch or done or (params.eval_every and step % params.eval_every == 0)
            ):
                val_loss = evaluate(model, val_batches)
                points.append({"step": step, "val_loss": val_loss})
            history.extend(points)
            elapsed = time.perf_counter() - train_started
            on_progress(
                Progress(
                    step=step,
                    total_steps=total_steps,
                    epoch=epoch,
                    train_loss=last_train,
                    val_loss=val_loss,
                    tokens_per_s=tokens_seen / elapsed if elapsed else None,
                    examples_per_s=examples_seen / elapsed if elapsed else None,
                    eta_s=elapsed / step * (total_steps - step),
                    new_points=points,
                )
            )
            if done:
                break
        if done:
            break
    train_seconds = time.perf_counter() - train_started

    output_dir.mkdir(parents=True, exist_ok=True)
    adapter_dir = output_dir / "adapter"
    model.save_pretrained(str(adapter_dir), save_embedding_layers=False)
    merged_path, merged_format = "", ""
    if export:
        merged_path, merged_format = _merge_and_export(
            model, tokenizer, ref, params, output_dir, name
        )

    result = TrainResult(
        output_dir=str(output_dir),
        adapter_dir=str(adapter_dir),
        merged_path=merged_path,
        merged_format=merged_format,
        steps=step,
        n_train=len(train_items),
        n_val=len(val_items),
        skipped=skipped + skipped_val,
        train_tokens=tokens_seen,
        seconds=time.perf_counter() - started,
        initial_val_loss=initial_val,
        final_train_loss=last_train,
        final_val_loss=val_loss,
        history=history,
    )
    _write_config(output_dir, ref, params, result, train_seconds, metadata or {})
    return result


def _merge_and_export(
    model: Any,
    tokenizer: Any,
    ref: BaseModelRef,
    params: TrainingParams,
    output_dir: Path,
    name: str,
) -> tuple[str, str]:
    """Fold the adapter into the weights: a GGUF for llama.cpp when the base is a GGUF of a
    known layout, else a transformers directory. Returns (path, format)."""
    merged = model.merge_and_unload()
    merged.eval()
    if ref.kind == "gguf" and gguf_arch(ref.path) in PERMUTED_QK_ARCHS:
        path = output_dir / "model.gguf"
        export_gguf(merged, ref.path, path, params.export_type, params.target_modules, name=name)
        return str(path), "gguf"
    path = output_dir / "merged"
    merged.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return str(path), "hf"


def _limit(items: Sequence[Any], n: int) -> Sequence[Any]:
    return items[:n] if n else items


def _write_config(
    output_dir: Path,
    ref: BaseModelRef,
    params: TrainingParams,
    result: TrainResult,
    train_seconds: float,
    metadata: dict[str, Any],
) -> None:
    """The exact configuration beside the adapter, enough to reproduce it."""
    import peft
    import torch
    import transformers

    record = {
        **metadata,
        "base_model": {"path": ref.path, "kind": ref.kind},
        "params": params.model_dump(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
        "result": {
            "steps": result.steps,
            "n_train": result.n_train,
            "n_val": result.n_val,
            "skipped": result.skipped,
            "train_tokens": result.train_tokens,
            "train_seconds": round(train_seconds, 3),
            "initial_val_loss": result.initial_val_loss,
            "final_train_loss": result.final_train_loss,
            "final_val_loss": result.final_val_loss,
            "merged_format": result.merged_format,
        },
    }
    (output_dir / "training_config.json").write_text(json.dumps(record, indent=2) + "\n")
