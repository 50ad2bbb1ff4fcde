from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from app.models._base import JobStatus, one_of, utcnow


class Job(SQLModel, table=True):
    """A unit of background work. Generic: the queue knows tasks by name only."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "queue", "status", "scheduled_at"),
        Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
        one_of("status", JobStatus),
    )

    id: int | None = Field(default=None, primary_key=True)
    queue: str = Field(default="default", max_length=60)
    task: str = Field(max_length=120)
    args: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=JobStatus.todo.value, max_length=16)
    # Jobs sharing a concurrency key share a limit (e.g. one model's provider quota).
    concurrency_key: str = Field(default="", max_length=120)
    # How many jobs of the key may be doing at once, over every worker; fixed when the job is
    # queued (None: no limit).
    concurrency_limit: int | None = None
    # Unique while set: the same work is never queued twice.
    lock_key: str | None = Field(default=None, max_length=200, unique=True)
    # Lets a caller find and cancel a batch of jobs (e.g. all of one run's) by a tag.
    group_key: str = Field(default="", max_length=120, index=True)
    attempts: int = 0
    max_attempts: int = 6
    scheduled_at: datetime = Field(default_factory=utcnow)
    worker_id: str = Field(default="", max_length=120)
    heartbeat_at: datetime | None = None
    last_error: str = ""
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
