from datetime import datetime

from sqlmodel import Field, SQLModel

from app.models._base import Stance, VariantKind, one_of, utcnow


class VariantTemplate(SQLModel, table=True):
    """A way of asking about a statement; placeholders are filled from the question."""

    __tablename__ = "variant_templates"
    __table_args__ = (
        one_of("kind", VariantKind),
        one_of("stance", Stance),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    kind: str = Field(max_length=16, index=True)
    stance: str = Field(default=Stance.none.value, max_length=16)
    persona: str = Field(default="", max_length=120)
    text: str
    # The user's second turn for multi-turn pushback ("Are you sure?").
    followup: str = ""
    is_active: bool = True
    builtin: bool = False
    created_at: datetime = Field(default_factory=utcnow)
