from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.models._base import utcnow


class LlmCacheEntry(SQLModel, table=True):
    """A finished model call, keyed by a hash of (model, messages, settings, sample index)."""

    __tablename__ = "llm_cache"

    key: str = Field(max_length=64, primary_key=True)
    value: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
