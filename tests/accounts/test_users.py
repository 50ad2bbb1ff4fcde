import re
from datetime import timedelta

import pytest
import typer
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.accounts import service
from app.accounts.cli import register
from app.accounts.deps import SESSION_COOKIE
from app.config import get_settings
from app.models import AuthSession, Invite, User
from tests import factories

LINK = re.compile(r"https?://[^/\s<]+(/invite/[A-Za-z0-9_\-]+)")


def test_users_page_lists_users_with_roles(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    rater = factories.make_user(db)
    page = admin_client.get("/users", headers=htmx_headers)
    assert page.status_code == 200
    assert rater.email in page.text and "rater" in page.text and "admin" in page.text


def test_admin_creates_a_user_with_a_password(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    response = admin_client.post(
        "/users",
        data={"email": "New@Example.org", "password": "long enough pw", "role": "rater"},
        headers=htmx_headers,
        follow_redirects=False,
    )
    assert response.status_code in (200, 303)
    user = service.get_user_by_email(db, "new@example.org")
    assert user is not None and user.role == "rater"
    assert service.authenticate(db, "new@example.org", "long enough pw") is not None
    again = admin_client.post(
        "/users", data={"email": "new@example.org", "password": "long enough pw"}
    )
    assert again.status_code == 422 and "already exists" in again.text
    short = admin_client.post("/users", data={"email": "b@example.org", "password": "short"})
    assert short.status_code == 422


def _invite(admin_client: TestClient, email: str) -> str:
    page = admin_client.post("/users/invite", data={"email": email, "role": "rater"})
    assert page.status_code == 200
    match = LINK.search(page.text)
    assert match, page.text
    return match.group(1)


def test_invite_link_sets_the_password_once(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    path = _invite(admin_client, "invitee@example.org")
    user = service.get_user_by_email(db, "invitee@example.org")
    assert user is not None and user.password_hash == ""
    admin_client.cookies.clear()
    form = admin_client.get(path, headers=htmx_headers)
    assert form.status_code == 200 and "invitee@example.org" in form.text
    mismatch = admin_client.post(path, data={"password": "a" * 10, "password2": "b" * 10})
    assert mismatch.status_code == 422
    done = admin_client.post(
        path,
        data={"password": "new password 1", "password2": "new password 1"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/login")
    assert service.authenticate(db, "invitee@example.org", "new password 1") is not None
    # Used: the link is refused from now on.
    assert admin_client.get(path).status_code == 410
    reuse = admin_client.post(
        path, data={"password": "other password", "password2": "other password"}
    )
    assert reuse.status_code == 410
    assert service.authenticate(db, "invitee@example.org", "other password") is None


def test_expired_invite_is_refused(client: TestClient, db: Session) -> None:
    user, token = service.create_invite(db, "late@example.org")
    invite = db.exec(select(Invite).where(Invite.user_id == user.id)).one()
    invite.expires_at = invite.created_at - timedelta(seconds=1)
    db.add(invite)
    db.flush()
    assert client.get(f"/invite/{token}").status_code == 410
    response = client.post(
        f"/invite/{token}", data={"password": "some password", "password2": "some password"}
    )
    assert response.status_code == 410
    assert client.get("/invite/not-a-token").status_code == 410


def test_invited_user_cannot_log_in_before_setting_a_password(
    client: TestClient, db: Session
) -> None:
    service.create_invite(db, "pending@example.org")
    response = client.post("/login", data={"email": "pending@example.org", "password": ""})
    assert response.status_code in (401, 422)


def test_deactivation_ends_sessions_and_reactivation_restores_login(
    admin_client: TestClient, db: Session
) -> None:
    rater = factories.make_user(db)
    other = TestClient(admin_client.app)
    factories.login(other, rater)
    assert db.exec(select(AuthSession).where(AuthSession.user_id == rater.id)).all()
    admin_client.post(f"/users/{rater.id}/deactivate")
    db.refresh(rater.user)
    assert not rater.user.is_active
    assert db.exec(select(AuthSession).where(AuthSession.user_id == rater.id)).all() == []
    assert other.get("/rate", follow_redirects=False).status_code == 303
    admin_client.post(f"/users/{rater.id}/reactivate")
    factories.login(other, rater)
    assert other.get("/rate").status_code == 200


def test_admin_cannot_deactivate_themselves(
    admin_client: TestClient, admin: factories.UserWithPassword, db: Session
) -> None:
    response = admin_client.post(f"/users/{admin.id}/deactivate")
    assert response.status_code == 422
    db.refresh(admin.user)
    assert admin.user.is_active


@pytest.mark.parametrize("https", [False, True])
def test_session_cookie_flags(
    client: TestClient,
    admin: factories.UserWithPassword,
    https: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "https", https)
    response = client.post(
        "/login", data={"email": admin.email, "password": admin.password}, follow_redirects=False
    )
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(SESSION_COOKIE) and "httponly" in cookie and "samesite=lax" in cookie
    assert ("secure" in cookie) is https


def test_cli_invite_and_list(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager

    @contextmanager
    def scope():  # type: ignore[no-untyped-def]
        yield db
        db.flush()

    monkeypatch.setattr("app.db.session_scope", scope)
    app = typer.Typer()
    app.add_typer(typer.Typer(), name="users")
    register(app)
    runner = CliRunner()
    invited = runner.invoke(app, ["users", "invite", "cli@example.org", "--base-url", "http://x"])
    assert invited.exit_code == 0, invited.output
    assert "http://x/invite/" in invited.output
    user = db.exec(select(User).where(User.email == "cli@example.org")).one()
    assert user.role == "rater" and not user.password_hash
    listed = runner.invoke(app, ["users", "list"])
    assert (
        listed.exit_code == 0 and "cli@example.org" in listed.output and "invited" in listed.output
    )
