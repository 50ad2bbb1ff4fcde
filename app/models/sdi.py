from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models._base import utcnow


class SdiDataset(SQLModel, table=True):
    """Synthetic training data built from a question set in the paper's four stages."""

    __tablename__ = "sdi_datasets"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    question_set_id: int = Field(foreign_key="question_sets.id", ondelete="RESTRICT")
    test_set_id: int | None = Field(
        default=None, foreign_key="question_sets.id", ondelete="SET NULL"
    )
    seed: int = 0
    status: str = Field(default="ready", max_length=16)
    # Everything needed to rebuild it, and what each stage did (counts in/out, drops).
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class SdiExample(SQLModel, table=True):
    """One chat example: user turn(s) and the reply the model should give."""

    __tablename__ = "sdi_examples"
    __table_args__ = (
        UniqueConstraint("dataset_id", "position", name="uq_sdi_examples_position"),
        Index("ix_sdi_examples_dataset_split", "dataset_id", "split"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="sdi_datasets.id", ondelete="CASCADE")
    position: int
    question_id: int | None = Field(default=None, foreign_key="questions.id", ondelete="SET NULL")
    kind: str = Field(default="", max_length=16)
    stance: str = Field(default="", max_length=16)
    truth: bool | None = None
    origin: str = Field(default="generated", max_length=40)
    split: str = Field(default="train", max_length=8)
    messages: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    norm_hash: str = Field(default="", max_length=64)
