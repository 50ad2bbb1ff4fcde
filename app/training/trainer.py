"""LoRA fine-tuning on the CPU with PyTorch, transformers and peft (the optional `train` extra).

Nothing here touches the database: the service hands in chat examples and callbacks, and gets
progress and file paths back. torch, transformers and peft are imported inside the functions,
so the rest of sdilab runs without them. Nothing is ever downloaded: the base model is a local
GGUF file (transformers dequantises it) or a local transformers directory.
"""

import copy
import importlib.util
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.training.schemas import TrainingParams

TRAIN_PACKAGES = ("torch", "transformers", "peft", "gguf")
INSTALL_HINT = "pip install -e '.[train]'"
IGNORE_INDEX = -100
# GGUF architectures whose q/k weights llama.cpp stores permuted (convert_hf_to_gguf's permute).
_PERMUTED_QK_ARCHS = ("llama",)


class TrainingError(Exception):
    """Training cannot go on (bad input, missing packages, unusable base model)."""


class Cancelled(Exception):
    """The run was cancelled between two steps."""


def missing_packages() -> list[str]:
    return [name for name in TRAIN_PACKAGES if importlib.util.find_spec(name) is None]


def available() -> bool:
    return not missing_packages()


def require_packages() -> None:
    missing = missing_packages()
    if missing:
        raise TrainingError(
            f"training needs {', '.join(missing)}: install the extra with `{INSTALL_HINT}`"
        )
    prepare_environment()


def prepare_environment() -> None:
    """Never reach a hub; no tqdm bars from transformers. Both are read when huggingface_hub
    and tqdm are first imported, so this runs before importing them."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ[key] = "1"
    os.environ.setdefault("TQDM_DISABLE", "1")


# -- base model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseModelRef:
    path: str  # the GGUF file, or the transformers directory
    kind: str  # "gguf" | "hf"


def resolve_base(base_model: str) -> BaseModelRef:
    """ "" is the bundled SmolLM2 GGUF; a .gguf file; or a local transformers directory."""
    if not base_model:
        from app.llm.local import bundled_model_path

        base_model = bundled_model_path()
    path = Path(base_model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return BaseModelRef(str(path.resolve()), "gguf")
    if path.is_dir() and (path / "config.json").is_file():
        return BaseModelRef(str(path.resolve()), "hf")
    raise TrainingError(
        f"base model not found: {base_model} (a .gguf file or a local transformers directory "
        "with config.json)"
    )


def load_base(ref: BaseModelRef) -> tuple[Any, Any]:
    """(a fresh copy of the model in float32, tokenizer), from local files only.

    The dequantised base is kept for the process (two models at most): a worker or a test session
    that trains again copies it in well under a second instead of dequantising again.
    """
    stat = os.stat(ref.path)
    model, tokenizer = _load_pristine(ref, (stat.st_mtime_ns, stat.st_size))
    return copy.deepcopy(model), tokenizer


@lru_cache(maxsize=2)
def _load_pristine(ref: BaseModelRef, _stamp: tuple[int, int]) -> tuple[Any, Any]:
    require_packages()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if ref.kind == "gguf":
        folder, name = str(Path(ref.path).parent), Path(ref.path).name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, local_files_only=True
        )
    else:
        tokenizer = AutoTokenizer.from_pretrained(ref.path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            ref.path, local_files_only=True, dtype=torch.float32
        )
    if tokenizer.chat_template is None:
        raise TrainingError(f"the base model {ref.path} has no chat template")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model, "hf_quantizer", None) is not None:
        # The GGUF weights are dequantised to float32 already; without this marker the model
        # saves like any other (a transformers directory for non-GGUF exports).
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    model.requires_grad_(False)
    model.eval()
    return model, tokenizer


# -- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on every prompt position

    @property
    def n_target(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def _chat_ids(tokenizer: Any, messages: Sequence[dict[str, Any]], *, prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(
        list(messages), add_generation_prompt=prompt, tokenize=True, return_dict=False
    )
    return [int(i) for i in ids]


def encode(tokenizer: Any, messages: Sequence[dict[str, Any]], max_length: int) -> Encoded | None:
    """Tokenise a chat with the model's chat template; only the final assistant reply is
    learnt (labels on its tokens, IGNORE_INDEX on the prompt). None if no target token fits."""
    chat = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    if len(chat) < 2 or chat[-1]["role"] != "assistant":
        raise TrainingError("an SDI example must end with the assistant's reply")
    prompt_ids = _chat_ids(tokenizer, chat[:-1], prompt=True)
    full_ids = _chat_ids(tokenizer, chat, prompt=False)
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise TrainingError("the chat template does not extend the prompt with the reply")
    full_ids = full_ids[:max_length]
    labels = [IGNORE_INDEX] * min(len(prompt_ids), len(full_ids)) + full_ids[len(prompt_ids) :]
    encoded = Encoded(input_ids=full_ids, labels=labels)
    return encoded if encoded.n_target else None


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors; padding is masked out of attention and of the loss."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def masked_loss_sum(logits: Any, labels: Any) -> tuple[Any, int]:
    """Summed next-token cross-entropy over labelled positions, and their count."""
    import torch.nn.functional as F

    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    count = int((shift_labels != IGNORE_INDEX).sum())
    total = F.cross_entropy(
        shift_logits.float(), shift_labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return total, count


def batch_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """``masked_loss_sum`` of the model's logits, computing the output projection only where a
    label is (the vocabulary projection is a fifth of the model and most positions are prompt).
    """
    import torch.nn.functional as F

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal_lm.model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE_INDEX
    logits = causal_lm.lm_head(hidden[:, :-1][where])
    total = F.cross_entropy(logits.float(), targets[where], reduction="sum")
    return total, int(where.sum())


def evaluate(model: Any, batches: Sequence[dict[str, Any]]) -> float | None:
    """Mean loss per target token over the batches."""
    import torch

    if not batches:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            loss_sum, n = batch_loss(model, batch)
            total += loss_sum.item()
            count += n
    model.train(was_training)
    return total / count if count else None


# -- training -----------------------------------------------------------------------------


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


def _batches(items: Sequence[Encoded], size: int, pad_id: int) -> list[dict[str, Any]]:
    return [collate(items[i : i + size], pad_id) for i in range(0, len(items), size)]


def _encode_all(
    tokenizer: Any, examples: Sequence[Sequence[dict[str, Any]]], max_length: int
) -> tuple[list[Encoded], int]:
    encoded, skipped = [], 0
    for messages in examples:
        item = encode(tokenizer, messages, max_length)
        if item is None:
            skipped += 1
        else:
            encoded.append(item)
    return encoded, skipped


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
    train_items, skipped = _encode_all(
        tokenizer, _limit(train_examples, params.max_train_examples), params.max_length
    )
    val_items, skipped_val = _encode_all(
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
    val_batches = _batches(val_items, params.batch_size, pad_id)
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
    if ref.kind == "gguf" and gguf_arch(ref.path) in _PERMUTED_QK_ARCHS:
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


# -- export -------------------------------------------------------------------------------


def gguf_arch(path: str) -> str:
    import gguf

    field_ = gguf.GGUFReader(path).get_field(gguf.Keys.General.ARCHITECTURE)
    return str(field_.contents()) if field_ is not None else ""


def _permute_qk(weights: Any, n_head: int) -> Any:
    """The inverse of transformers' reverse permutation of llama.cpp's q/k layout."""
    dim = weights.shape[0] // n_head // 2
    return weights.reshape(n_head, 2, dim, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def export_gguf(
    merged: Any,
    base_path: str,
    out_path: Path,
    export_type: str,
    target_modules: list[str],
    *,
    name: str,
) -> None:
    """Copy the base GGUF, replacing the tensors LoRA changed by the merged weights.

    Untouched tensors keep their original bytes (no requantisation loss); the changed ones are
    written as ``export_type``. Verified by loading the result in llama.cpp (tests).
    """
    import gguf
    import numpy as np

    qtypes = {
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
        "f16": gguf.GGMLQuantizationType.F16,
        "f32": gguf.GGMLQuantizationType.F32,
    }
    qtype = qtypes[export_type]
    reader = gguf.GGUFReader(base_path)
    arch = str(reader.get_field(gguf.Keys.General.ARCHITECTURE).contents())  # type: ignore[union-attr]
    arch_enum = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    config = merged.config
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    name_map = gguf.get_tensor_name_map(arch_enum, config.num_hidden_layers)

    replaced: dict[str, Any] = {}
    for hf_name, param in merged.named_parameters():
        module = hf_name.rsplit(".", 2)[-2] if hf_name.endswith(".weight") else ""
        if module not in target_modules:
            continue
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise TrainingError(f"no GGUF tensor for {hf_name}")
        weights = param.detach().to("cpu").float().numpy()
        if module == "q_proj":
            weights = _permute_qk(weights, n_head)
        elif module == "k_proj":
            weights = _permute_qk(weights, n_kv)
        if qtype == gguf.GGMLQuantizationType.F32:
            replaced[gguf_name] = np.ascontiguousarray(weights, dtype=np.float32)
        elif qtype == gguf.GGMLQuantizationType.F16:
            replaced[gguf_name] = np.ascontiguousarray(weights, dtype=np.float16)
        else:
            replaced[gguf_name] = gguf.quants.quantize(weights, qtype)
    missing = set(replaced) - {t.name for t in reader.tensors}
    if missing:
        raise TrainingError(f"tensors not in the base GGUF: {sorted(missing)}")

    tmp_path = out_path.with_suffix(".gguf.part")
    writer = gguf.GGUFWriter(str(tmp_path), arch=arch, endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = int(alignment.contents())
    for fld in reader.fields.values():
        if fld.name == gguf.Keys.General.ARCHITECTURE or fld.name.startswith("GGUF."):
            continue
        value = name if fld.name == gguf.Keys.General.NAME else fld.contents()
        val_type = fld.types[0]
        sub_type = fld.types[-1] if val_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(fld.name, value, val_type, sub_type=sub_type)
    for tensor in reader.tensors:
        data = replaced.get(tensor.name)
        if data is None:
            writer.add_tensor_info(
                tensor.name,
                tensor.data.shape,
                tensor.data.dtype,
                tensor.data.nbytes,
                tensor.tensor_type,
            )
        else:
            writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        data = replaced.get(tensor.name)
        writer.write_tensor_data(
            tensor.data if data is None else data, tensor_endianess=reader.endianess
        )
    writer.close()
    os.replace(tmp_path, out_path)
