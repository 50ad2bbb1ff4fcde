from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models._base import SdiStatus, utcnow


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
    status: str = Field(default=SdiStatus.ready.value, max_length=16)
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
    question_id: int | None = Field(
        default=None, foreign_key="questions.id", index=True, ondelete="SET NULL"
    )
    kind: str = Field(default="", max_length=16)
    stance: str = Field(default="", max_length=16)
    truth: bool | None = None
    origin: str = Field(default="generated", max_length=40)
    split: str = Field(default="train", max_length=16)  # train | validation
    messages: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    norm_hash: str = Field(default="", max_length=64)


class SdiFineTune(SQLModel, table=True):
    """A fine-tuning job started from an SDI dataset through an OpenAI-compatible API."""

    __tablename__ = "sdi_fine_tunes"

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="sdi_datasets.id", index=True, ondelete="CASCADE")
    # The model config whose provider account (base URL, key variable) runs the job.
    base_model_config_id: int = Field(foreign_key="model_configs.id", ondelete="RESTRICT")
    base_model: str = Field(max_length=255)
    epochs: int | None = None
    suffix: str = Field(default="", max_length=64)
    seed: int | None = None
    result_name: str = Field(default="", max_length=120)
    # validating_files | queued | running | succeeded | failed | cancelled (the provider's)
    status: str = Field(default="uploading", max_length=24)
    training_file_id: str = Field(default="", max_length=120)
    validation_file_id: str = Field(default="", max_length=120)
    provider_job_id: str = Field(default="", max_length=120, index=True)
    fine_tuned_model_id: str = Field(default="", max_length=255)
    trained_tokens: int | None = None
    error: str = ""
    # [{"id", "created_at", "level", "message"}], oldest first, as the provider reported them.
    events: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    result_model_config_id: int | None = Field(
        default=None, foreign_key="model_configs.id", ondelete="SET NULL"
    )
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
