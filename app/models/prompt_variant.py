from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models._base import Stance, VariantKind, one_of


class PromptVariant(SQLModel, table=True):
    """A statement rendered through a template for one run: the exact conversation sent."""

    __tablename__ = "prompt_variants"
    __table_args__ = (
        UniqueConstraint("run_id", "question_id", "template_id", name="uq_prompt_variants_run_q_t"),
        Index("ix_prompt_variants_run_kind", "run_id", "kind"),
        one_of("kind", VariantKind),
        one_of("stance", Stance),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    question_id: int = Field(foreign_key="questions.id", index=True, ondelete="RESTRICT")
    template_id: int | None = Field(
        default=None, foreign_key="variant_templates.id", ondelete="SET NULL"
    )
    kind: str = Field(max_length=16)
    stance: str = Field(max_length=16)
    premise_erroneous: bool
    # [{"role": "user", "content": ...}, ...]; the first user turn(s).
    messages: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    # Pushback: the user's second turn, sent after the model's first answer.
    followup: str = ""
