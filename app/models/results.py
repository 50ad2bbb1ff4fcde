from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from app.models._base import utcnow


class ResultsSnapshot(SQLModel, table=True):
    """A run's computed results (JSON), valid while ``marker`` matches the data's marker."""

    __tablename__ = "results_snapshots"

    run_id: int = Field(foreign_key="runs.id", primary_key=True, ondelete="CASCADE")
    # Which computation: resamples, seed, with or without agreement.
    variant: str = Field(primary_key=True, max_length=60)
    marker: str = Field(max_length=200)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    computed_at: datetime = Field(default_factory=utcnow)
