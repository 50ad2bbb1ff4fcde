"""Plain data passed between the pipeline's stages (no database, no model calls)."""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
# (conversation so far) -> the reply text; how a teacher model or paraphraser is plugged in.
Writer = Callable[[list[Message]], str]


@dataclass(frozen=True)
class QuestionData:
    id: int | None
    statement: str
    truth: bool
    negation: str = ""
    category: str = ""
    explanation: str = ""
    source_id: str = ""
    conflicting: bool = False


@dataclass
class Draft:
    """One example on its way through the pipeline."""

    messages: list[Message]
    kind: str = ""
    stance: str = ""
    truth: bool | None = None
    question: QuestionData | None = None
    persona: str = ""
    template: str = ""
    origin: str = "generated"
    augmentations: list[str] = field(default_factory=list)
    split: str = "train"
    tokens: int = 0

    @property
    def statement(self) -> str:
        return self.question.statement if self.question else ""

    @property
    def cell(self) -> tuple[str, str, str]:
        return (self.kind, self.stance, "true" if self.truth else "false")


@dataclass
class StageLog:
    """What one stage (or step) did: counts in and out and why things were dropped."""

    name: str
    stage: str = ""  # the paper's stage: generation, augmentation, integration, preprocessing
    count_in: int = 0
    count_out: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    details: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, str]] = field(default_factory=list)

    MAX_SAMPLES = 50

    def drop(
        self, reason: str, draft: Draft | None = None, note: str = "", statement: str = ""
    ) -> None:
        self.dropped[reason] += 1
        if len(self.samples) < self.MAX_SAMPLES:
            text = statement or (draft.statement if draft else "")
            self.samples.append({"reason": reason, "statement": text, "note": note})

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stage": self.stage,
            "in": self.count_in,
            "out": self.count_out,
            "dropped": dict(sorted(self.dropped.items())),
            "details": self.details,
            "drop_samples": self.samples,
        }
