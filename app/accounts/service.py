"""Users, logins, sessions. Services flush; the caller commits."""

from datetime import timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from app.accounts.schemas import UserCreate
from app.accounts.security import (
    DUMMY_HASH,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from app.models import AuthSession, LoginAttempt, Role, User, utcnow

THROTTLE_WINDOW = timedelta(minutes=15)


class AccountError(ValueError):
    pass


def normalise_email(email: str) -> str:
    return email.strip().lower()


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == normalise_email(email))).first()


def create_user(session: Session, data: UserCreate) -> User:
    email = normalise_email(str(data.email))
    if get_user_by_email(session, email) is not None:
        raise AccountError(f"A user with the email {email} already exists.")
    user = User(
        email=email,
        display_name=data.display_name or email.split("@")[0],
        role=data.role.value,
        password_hash=hash_password(data.password),
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    session.add(user)
    session.flush()


def is_throttled(session: Session, key: str, limit: int) -> bool:
    since = utcnow() - THROTTLE_WINDOW
    count = session.exec(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.key == key, LoginAttempt.attempted_at >= since)
    ).one()
    return count >= limit


def record_failed_login(session: Session, key: str) -> None:
    session.add(LoginAttempt(key=key))
    session.flush()


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = get_user_by_email(session, email)
    if user is None:
        verify_password(DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password) or not user.is_active:
        return None
    return user


def start_session(session: Session, user: User, hours: int) -> str:
    """A new session id for every login (no fixation); returns the raw token for the cookie."""
    assert user.id is not None
    token = new_token()
    now = utcnow()
    session.add(
        AuthSession(
            token_hash=hash_token(token), user_id=user.id, expires_at=now + timedelta(hours=hours)
        )
    )
    user.last_login_at = now
    session.add(user)
    session.execute(delete(AuthSession).where(col(AuthSession.expires_at) < now))
    session.flush()
    return token


def end_session(session: Session, token: str) -> None:
    session.execute(delete(AuthSession).where(col(AuthSession.token_hash) == hash_token(token)))
    session.flush()


def user_for_token(session: Session, token: str) -> User | None:
    row = session.exec(
        select(User)
        .join(AuthSession, col(AuthSession.user_id) == col(User.id))
        .where(
            AuthSession.token_hash == hash_token(token),
            AuthSession.expires_at > utcnow(),
            User.is_active == True,  # noqa: E712
        )
    ).first()
    return row


def end_all_sessions(session: Session, user_id: int) -> None:
    session.execute(delete(AuthSession).where(col(AuthSession.user_id) == user_id))
    session.flush()


def is_admin(user: User | None) -> bool:
    return user is not None and user.role == Role.admin.value
