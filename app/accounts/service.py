"""Users, logins, sessions. Services flush; the caller commits."""

from datetime import timedelta

from sqlalchemy import bindparam, delete, func, true, update
from sqlalchemy import select as core_select
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, col, select

from app.accounts import security
from app.accounts.schemas import UserCreate
from app.accounts.security import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from app.models import AuthSession, Invite, LoginAttempt, Role, User, utcnow

THROTTLE_WINDOW = timedelta(minutes=15)

_USERS = User.__table__  # type: ignore[attr-defined]
_SESSIONS = AuthSession.__table__  # type: ignore[attr-defined]
# Every request runs this: built once, executed on the Core path (no ORM statement
# compilation, no identity map, no loading machinery). The unique index on token_hash finds
# the session; the join takes the user by primary key.
_USER_FOR_TOKEN = (
    core_select(*_USERS.c)
    .select_from(_USERS.join(_SESSIONS, _SESSIONS.c.user_id == _USERS.c.id))
    .where(
        _SESSIONS.c.token_hash == bindparam("token_hash"),
        _SESSIONS.c.expires_at > bindparam("now"),
        _USERS.c.is_active == true(),
    )
)


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
        verify_password(security.DUMMY_HASH, password)
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
    """The active user of an unexpired session, or None.

    The user comes back detached (every column loaded, not in the session's identity map):
    reading it needs no query, and ``session.add(user)`` would update the row, as before.
    """
    row = (
        session.connection()
        .execute(_USER_FOR_TOKEN, {"token_hash": hash_token(token), "now": utcnow()})
        .first()
    )
    if row is None:
        return None
    user = User(**row._mapping)
    make_transient_to_detached(user)
    return user


def end_all_sessions(session: Session, user_id: int) -> None:
    session.execute(delete(AuthSession).where(col(AuthSession.user_id) == user_id))
    session.flush()


def is_admin(user: User | None) -> bool:
    return user is not None and user.role == Role.admin.value


# --- user administration --------------------------------------------------------------------

INVITE_HOURS = 72


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.role), col(User.email))).all())


def set_active(session: Session, user: User, active: bool) -> User:
    """Deactivating a user also ends every session they have."""
    user.is_active = active
    session.add(user)
    if not active and user.id is not None:
        end_all_sessions(session, user.id)
    session.flush()
    return user


def create_invite(
    session: Session,
    email: str,
    *,
    role: Role = Role.rater,
    display_name: str = "",
    created_by: int | None = None,
    hours: int = INVITE_HOURS,
) -> tuple[User, str]:
    """A user without a password and a one-time link token (returned raw, stored hashed)."""
    email = normalise_email(email)
    user = get_user_by_email(session, email)
    if user is not None and user.password_hash:
        raise AccountError(f"{email} already has an account with a password.")
    if user is None:
        user = User(email=email, display_name=display_name or email.split("@")[0], role=role.value)
        session.add(user)
        session.flush()
    assert user.id is not None
    token = new_token()
    session.add(
        Invite(
            token_hash=hash_token(token),
            user_id=user.id,
            created_by=created_by,
            expires_at=utcnow() + timedelta(hours=hours),
        )
    )
    session.flush()
    return user, token


def valid_invite(session: Session, token: str) -> Invite | None:
    """The invite for this token if it is unused and not expired."""
    invite = session.exec(select(Invite).where(Invite.token_hash == hash_token(token))).first()
    if invite is None or invite.used_at is not None or invite.expires_at <= utcnow():
        return None
    return invite


def accept_invite(session: Session, token: str, password: str) -> User:
    invite = valid_invite(session, token)
    if invite is None:
        raise AccountError("This invite link is not valid: it was used already or has expired.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
    # Conditional update: two clicks on the same link cannot both use it.
    used = session.execute(
        update(Invite)
        .where(col(Invite.id) == invite.id, col(Invite.used_at).is_(None))
        .values(used_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    if not used:
        raise AccountError("This invite link was used already.")
    user = session.get(User, invite.user_id)
    assert user is not None
    set_password(session, user, password)
    return user
