"""Sessions: no fixation, logout and deactivation end access at once (pages, HTMX, API),
tampered/expired/used invites are refused."""

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts import service
from app.accounts.deps import SESSION_COOKIE, sign_token
from app.models import AuthSession, Invite
from tests import factories

SAME_SITE = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}


def _refused(client: TestClient, cookie: str) -> bool:
    """Every kind of request made with this cookie is treated as anonymous."""
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    page = client.get("/users", follow_redirects=False)
    htmx = client.get("/rate", headers={"HX-Request": "true"}, follow_redirects=False)
    api = client.get("/api/v1/runs", follow_redirects=False)
    post = client.post(
        "/users/invite", data={"email": "x@example.org"}, headers=SAME_SITE, follow_redirects=False
    )
    return (
        page.status_code == 303
        and page.headers["location"].startswith("/login")
        and htmx.headers.get("HX-Redirect", "").startswith("/login")
        and api.status_code == 401
        and post.headers.get("location", "").startswith("/login")
    )


def test_planted_cookie_is_not_adopted_by_login(
    client: TestClient, db: Session, admin: factories.UserWithPassword
) -> None:
    planted = sign_token("attacker-chosen-session-id")
    client.cookies.set(SESSION_COOKIE, planted)
    response = client.post(
        "/login", data={"email": admin.email, "password": admin.password}, follow_redirects=False
    )
    assert response.status_code == 303
    issued = response.cookies.get(SESSION_COOKIE)
    assert issued and issued != planted
    assert _refused(client, planted)


def test_attackers_own_session_is_ended_not_upgraded_when_a_victim_logs_in(
    client: TestClient, db: Session, admin: factories.UserWithPassword
) -> None:
    attacker = factories.make_user(db, role="rater")
    factories.login(client, attacker)
    attacker_cookie = client.cookies.get(SESSION_COOKIE)
    assert attacker_cookie
    # The victim logs in in the browser the attacker's cookie was planted in.
    factories.login(client, admin)
    assert client.cookies.get(SESSION_COOKIE) != attacker_cookie
    assert client.get("/users", follow_redirects=False).status_code == 200
    assert _refused(client, attacker_cookie)


def test_logout_ends_the_session_server_side(
    client: TestClient, db: Session, admin: factories.UserWithPassword
) -> None:
    factories.login(client, admin)
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie and client.get("/users", follow_redirects=False).status_code == 200
    out = client.post("/logout", headers={**SAME_SITE, "HX-Request": "true"})
    assert out.status_code == 200 and out.headers["HX-Redirect"] == "/login"
    assert _refused(client, cookie)  # replaying the old cookie does not work
    assert db.exec(select(AuthSession)).all() == []


def test_tampered_and_expired_cookies_are_refused(
    client: TestClient, db: Session, admin: factories.UserWithPassword
) -> None:
    factories.login(client, admin)
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    assert _refused(client, cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
    assert _refused(client, "not-even-signed")
    row = db.exec(select(AuthSession)).one()
    row.expires_at = row.expires_at - timedelta(days=2)
    db.add(row)
    db.flush()
    assert _refused(client, cookie)


def test_deactivated_user_loses_access_immediately(
    client: TestClient, db: Session, admin: factories.UserWithPassword
) -> None:
    rater = factories.make_user(db, role="rater")
    other_admin = factories.make_user(db, role="admin")
    rater_cookie = sign_token(service.start_session(db, rater.user, 1))
    other_cookie = sign_token(service.start_session(db, other_admin.user, 1))
    client.cookies.set(SESSION_COOKIE, rater_cookie)
    assert client.get("/rate", follow_redirects=False).status_code == 200
    client.cookies.clear()
    factories.login(client, admin)
    for user in (rater, other_admin):
        done = client.post(
            f"/users/{user.id}/deactivate", headers=SAME_SITE, follow_redirects=False
        )
        assert done.status_code in (200, 303), done.text[:300]
    assert _refused(client, other_cookie)
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, rater_cookie)
    assert client.get("/rate", follow_redirects=False).headers["location"].startswith("/login")
    assert client.get("/rate/mine", follow_redirects=False).status_code == 303
    client.cookies.clear()
    again = client.post("/login", data={"email": rater.email, "password": rater.password})
    assert again.status_code == 401 and client.cookies.get(SESSION_COOKIE) is None


def test_invites_tampered_expired_used_or_for_a_deactivated_user(
    client: TestClient, db: Session
) -> None:
    form = {"password": "a fine password", "password2": "a fine password"}
    _user, token = service.create_invite(db, "twice@example.org")
    assert client.get(f"/invite/{token}x").status_code == 410
    assert client.post(f"/invite/{token[:-1]}", data=form).status_code == 410
    assert client.post(f"/invite/{token}", data=form, follow_redirects=False).status_code == 303
    assert client.post(f"/invite/{token}", data=form).status_code == 410

    late, late_token = service.create_invite(db, "late2@example.org")
    invite = db.exec(select(Invite).where(Invite.user_id == late.id)).one()
    invite.expires_at = invite.expires_at - timedelta(hours=service.INVITE_HOURS + 1)
    db.add(invite)
    db.flush()
    assert client.post(f"/invite/{late_token}", data=form).status_code == 410
    assert service.authenticate(db, "late2@example.org", form["password"]) is None

    gone, gone_token = service.create_invite(db, "gone@example.org")
    service.set_active(db, gone, False)
    client.post(f"/invite/{gone_token}", data=form)
    login = client.post("/login", data={"email": "gone@example.org", "password": form["password"]})
    assert login.status_code == 401 and client.cookies.get(SESSION_COOKIE) is None
