"""user_for_token, which every request runs: who a session token belongs to, in one statement,
without loading the user into the request's session."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.accounts import service
from app.models import AuthSession, User, utcnow
from tests import factories


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on the test database while the test runs."""
    seen: list[str] = []

    def _record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")):  # the test's own nesting
            seen.append(sql)

    event.listen(engine, "before_cursor_execute", _record)
    yield seen
    event.remove(engine, "before_cursor_execute", _record)


def _session_row(db: Session, token: str) -> AuthSession:
    from app.accounts.security import hash_token

    return db.exec(select(AuthSession).where(AuthSession.token_hash == hash_token(token))).one()


def test_the_user_of_a_live_session_with_every_column(db: Session) -> None:
    admin = factories.make_user(db, role="admin").user
    rater = factories.make_user(db, role="rater").user
    admin_token = service.start_session(db, admin, 1)
    rater_token = service.start_session(db, rater, 1)
    db.commit()
    for token, expected in ((admin_token, admin), (rater_token, rater)):
        found = service.user_for_token(db, token)
        assert found is not None
        assert found.model_dump() == expected.model_dump()
        assert found.role == expected.role and found.last_login_at is not None


def test_expired_unknown_and_deactivated_give_no_user(db: Session) -> None:
    user = factories.make_user(db).user
    expired = service.start_session(db, user, 1)
    row = _session_row(db, expired)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.add(row)
    live = service.start_session(db, user, 1)
    db.flush()
    assert service.user_for_token(db, expired) is None
    assert service.user_for_token(db, "no-such-token") is None
    assert service.user_for_token(db, live) is not None
    # The query itself refuses an inactive user, even with a session left over.
    user.is_active = False
    db.add(user)
    db.flush()
    assert _session_row(db, live) is not None
    assert service.user_for_token(db, live) is None


def test_one_statement_and_nothing_left_in_the_session(db: Session, statements: list[str]) -> None:
    user = factories.make_user(db).user
    token = service.start_session(db, user, 1)
    db.commit()
    db.expunge_all()
    statements.clear()
    found = service.user_for_token(db, token)
    assert found is not None
    assert (found.id, found.email, found.display_name, found.role, found.is_active) == (
        user.id,
        user.email,
        user.display_name,
        user.role,
        True,
    )
    assert len(statements) == 1  # reading the user's fields needs no further query
    assert found not in db and inspect(found).detached
    assert list(db.identity_map.values()) == []


def test_the_returned_user_can_still_be_changed_through_the_session(db: Session) -> None:
    user = factories.make_user(db).user
    token = service.start_session(db, user, 1)
    db.commit()
    db.expunge_all()
    found = service.user_for_token(db, token)
    assert found is not None
    found.display_name = "Renamed"
    db.add(found)
    db.flush()  # an UPDATE of the row, not a second user
    db.expunge_all()
    rows = db.exec(select(User).where(User.email == user.email)).all()
    assert [r.display_name for r in rows] == ["Renamed"]
