from datetime import datetime

from sqlmodel import Field, SQLModel

from app.models._base import Role, one_of, utcnow


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (one_of("role", Role),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    display_name: str = Field(default="", max_length=120)
    role: str = Field(default=Role.rater.value, max_length=16)
    # Empty until an invited user sets a password.
    password_hash: str = Field(default="", max_length=255)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None
