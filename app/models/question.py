from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models._base import utcnow


class QuestionSet(SQLModel, table=True):
    __tablename__ = "question_sets"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    description: str = ""
    source_filename: str = Field(default="", max_length=255)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class Question(SQLModel, table=True):
    __tablename__ = "questions"
    __table_args__ = (
        UniqueConstraint("question_set_id", "position", name="uq_questions_set_position"),
        Index("ix_questions_set_hash", "question_set_id", "norm_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    question_set_id: int = Field(foreign_key="question_sets.id", ondelete="CASCADE")
    position: int  # 1-based row order in the uploaded file
    source_id: str = Field(default="", max_length=120)
    statement: str
    # The statement's negation, written by hand; empty when the upload gave none.
    negation: str = ""
    truth: bool
    category: str = Field(default="", max_length=80)
    explanation: str = ""
    norm_hash: str = Field(max_length=64)
    # Set when this row repeats an earlier one of the same set (exactly or nearly).
    # Indexed so that deleting a set does not scan the table once per deleted row.
    duplicate_of_id: int | None = Field(
        default=None, foreign_key="questions.id", ondelete="SET NULL", index=True
    )
    duplicate_similarity: float | None = None
    # True when the earlier duplicate carries the opposite truth label.
    duplicate_conflict: bool = False
