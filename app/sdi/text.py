"""Small text helpers: clauses, normalisation, hashing, deterministic typos."""

import hashlib
import json
import random
import re
import unicodedata
from typing import Any

from app.sdi.types import QuestionData
from app.variants.render import clause

__all__ = [
    "clause",
    "conversation_hash",
    "conversation_text",
    "inject_typos",
    "negation_of",
    "normalise",
    "sentence",
    "true_fact",
]

_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def sentence(text: str) -> str:
    text = " ".join(text.split())
    if text and text[-1] not in ".!?":
        text += "."
    return text


def negation_of(question: QuestionData) -> str:
    if question.negation.strip():
        return sentence(question.negation)
    return f"It is not true that {clause(question.statement)}."


def true_fact(question: QuestionData) -> str:
    """The sentence that is true: the statement when true, else its negation."""
    return sentence(question.statement) if question.truth else negation_of(question)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _PUNCT.sub(" ", text)
    return _WS.sub(" ", text).strip()


def conversation_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m.get('role', '')}: {m.get('content') or ''}" for m in messages)


def conversation_hash(messages: list[dict[str, Any]]) -> str:
    canonical = json.dumps(
        [[m.get("role", ""), normalise(str(m.get("content") or ""))] for m in messages],
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def inject_typos(text: str, rng: random.Random, count: int = 1) -> str:
    """Swap two inner letters in ``count`` words of four letters or more, chosen by ``rng``."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    for index in rng.sample(candidates, min(count, len(candidates))):
        word = words[index]
        pos = rng.randrange(1, len(word) - 2)
        if word[pos] == word[pos + 1]:
            # Swapping equal letters changes nothing; drop one instead.
            words[index] = word[:pos] + word[pos + 1 :]
        else:
            words[index] = word[:pos] + word[pos + 1] + word[pos] + word[pos + 2 :]
    return " ".join(words)
