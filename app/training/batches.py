"""Training examples as token ids: the chat template applied, the loss on the assistant's reply
only, batches padded, and the masked loss."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.training.schemas import TrainingError

IGNORE_INDEX = -100


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


def batches_of(items: Sequence[Encoded], size: int, pad_id: int) -> list[dict[str, Any]]:
    return [collate(items[i : i + size], pad_id) for i in range(0, len(items), size)]


def encode_all(
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
