from datetime import datetime

from sqlmodel import Field, SQLModel

from app.models._base import utcnow


class AuthSession(SQLModel, table=True):
    """A server-side login session; the cookie carries only a signed random id."""

    __tablename__ = "auth_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class Invite(SQLModel, table=True):
    """A one-time link that lets a new rater set a password."""

    __tablename__ = "invites"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class LoginAttempt(SQLModel, table=True):
    """Failed logins, kept in the database so throttling holds across web processes."""

    __tablename__ = "login_attempts"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300, index=True)
    attempted_at: datetime = Field(default_factory=utcnow, index=True)
