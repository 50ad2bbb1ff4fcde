from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models._base import RunStatus, one_of, utcnow


class Run(SQLModel, table=True):
    """One experiment: a question set's prompt variants sent to each arm's model."""

    __tablename__ = "runs"
    __table_args__ = (one_of("status", RunStatus),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    question_set_id: int = Field(foreign_key="question_sets.id", index=True, ondelete="RESTRICT")
    status: str = Field(default=RunStatus.running.value, max_length=16, index=True)
    # "generated" runs call models; "imported" runs hold replies produced elsewhere.
    source: str = Field(default="generated", max_length=16)
    seed: int = 0
    samples: int = 1
    question_limit: int | None = None
    show_reference: bool = True
    use_batch_api: bool = False
    # The exact settings the run was created with (templates, arms, models), to reproduce it.
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    # Moves when stored replies change in place (their verdicts read again): results computed
    # before depend on it, so downstream caches need not be told.
    replies_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class RunArm(SQLModel, table=True):
    """A model taking part in a run (baseline, SDI, ...), with its settings frozen."""

    __tablename__ = "run_arms"
    __table_args__ = (
        UniqueConstraint("run_id", "model_config_id", name="uq_run_arms_run_model"),
        UniqueConstraint("run_id", "label", name="uq_run_arms_run_label"),
        # Workers cache an arm's frozen spec by id: an id must never be reused on SQLite.
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    model_config_id: int = Field(foreign_key="model_configs.id", ondelete="RESTRICT")
    label: str = Field(max_length=60)  # "baseline", "sdi", ...
    position: int = 0
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
