"""Stage 4, preprocessing: system prompt, train/validation split, token counts, export lines."""

import json
import random
import statistics
from collections.abc import Callable, Iterable
from typing import Any

from app.sdi.openai_format import validate_lines
from app.sdi.types import Draft, Message, StageLog

TokenCounter = Callable[[str], int]


def add_system_prompt(drafts: list[Draft], system_prompt: str) -> None:
    if not system_prompt.strip():
        return
    for draft in drafts:
        if draft.messages and draft.messages[0].get("role") == "system":
            continue
        draft.messages = [{"role": "system", "content": system_prompt.strip()}, *draft.messages]


def split(drafts: list[Draft], fraction: float, rng: random.Random, log: StageLog) -> None:
    """Seeded train/validation split by statement, so validation statements are unseen."""
    groups: dict[str, None] = {}
    for draft in drafts:
        if draft.question is not None:
            groups.setdefault(draft.statement, None)
    keys = list(groups)
    rng.shuffle(keys)
    n_val = round(len(keys) * fraction)
    validation = set(keys[:n_val])
    for draft in drafts:
        if draft.question is None:
            draft.split = "validation" if rng.random() < fraction else "train"
        else:
            draft.split = "validation" if draft.statement in validation else "train"
    log.details["split"] = {
        "validation_fraction": fraction,
        "validation_statements": n_val,
        "train": sum(1 for d in drafts if d.split == "train"),
        "validation": sum(1 for d in drafts if d.split == "validation"),
    }


def count_tokens(drafts: list[Draft], counter: TokenCounter, label: str, log: StageLog) -> None:
    for draft in drafts:
        draft.tokens = sum(counter(str(m.get("content") or "")) for m in draft.messages)
    counts = [d.tokens for d in drafts]
    log.details["tokens"] = {
        "tokenizer": label,
        "note": "counted with this tokenizer; an estimate for other models",
        "total": sum(counts),
        "train": sum(d.tokens for d in drafts if d.split == "train"),
        "validation": sum(d.tokens for d in drafts if d.split == "validation"),
        "max_example": max(counts, default=0),
        "mean_example": round(statistics.fmean(counts), 1) if counts else 0,
    }


def openai_record(messages: list[Message]) -> dict[str, Any]:
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}


def hf_record(
    messages: list[Message], kind: str, stance: str, truth: bool | None, origin: str
) -> dict[str, Any]:
    return {
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "kind": kind,
        "stance": stance,
        "truth": truth,
        "origin": origin,
    }


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def validate_openai(
    drafts: Iterable[Draft], token_limit: int, counter: TokenCounter, log: StageLog
) -> None:
    train = [dumps(openai_record(d.messages)) for d in drafts if d.split == "train"]
    report = validate_lines(train, token_limit=token_limit, count_tokens=counter)
    log.details["openai_validation"] = {
        "ok": report.ok,
        "examples": report.examples,
        "errors": [str(e) for e in report.errors[:20]],
        "error_count": len(report.errors),
        "token_limit": token_limit,
    }
