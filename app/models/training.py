from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.models._base import one_of, utcnow


class TrainingStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class TrainingRun(SQLModel, table=True):
    """A local fine-tuning (LoRA) of a base model on an SDI dataset, and what it produced."""

    __tablename__ = "training_runs"
    __table_args__ = (one_of("status", TrainingStatus),)

    id: int | None = Field(default=None, primary_key=True)
    # The name of the model config created on success.
    name: str = Field(max_length=120)
    dataset_id: int | None = Field(
        default=None, foreign_key="sdi_datasets.id", ondelete="SET NULL", index=True
    )
    # A GGUF file or a Hugging Face model directory; "" means the bundled SmolLM2.
    base_model: str = Field(default="", max_length=500)
    # The exact hyper-parameters (app.training.schemas.TrainingParams).
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=TrainingStatus.queued.value, max_length=16, index=True)
    cancel_requested: bool = False
    job_id: int | None = Field(default=None, foreign_key="jobs.id", ondelete="SET NULL")
    # Progress, refreshed every few steps.
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    examples_per_s: float | None = None
    eta_s: float | None = None
    n_train: int = 0
    n_val: int = 0
    # [{"step": n, "train_loss": x} or {"step": n, "val_loss": y}, ...]
    loss_history: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # Where the results live, relative to settings.data_dir.
    output_dir: str = Field(default="", max_length=500)
    adapter_path: str = Field(default="", max_length=500)
    merged_path: str = Field(default="", max_length=500)
    # "gguf" (llama.cpp serves it) or "hf" (transformers generates with it).
    merged_format: str = Field(default="", max_length=8)
    error: str = ""
    model_config_id: int | None = Field(
        default=None, foreign_key="model_configs.id", ondelete="SET NULL"
    )
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
