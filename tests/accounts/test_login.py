from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts.deps import SESSION_COOKIE
from app.models import AuthSession
from tests import factories


def test_login_sets_httponly_lax_cookie_and_redirects(
    client: TestClient, admin: factories.UserWithPassword
) -> None:
    response = client.post(
        "/login",
        data={"email": admin.email, "password": admin.password, "next": "/sets"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/sets"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_wrong_password_is_refused_without_a_session(
    client: TestClient, admin: factories.UserWithPassword
) -> None:
    response = client.post("/login", data={"email": admin.email, "password": "nope nope"})
    assert response.status_code == 401
    assert "Wrong email or password" in response.text
    assert SESSION_COOKIE not in response.cookies


def test_login_never_redirects_off_site(
    client: TestClient, admin: factories.UserWithPassword
) -> None:
    response = client.post(
        "/login",
        data={"email": admin.email, "password": admin.password, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_login_rotates_the_session_and_logout_ends_it(
    client: TestClient, db: Session, admin: factories.UserWithPassword
) -> None:
    factories.login(client, admin)
    first = client.cookies[SESSION_COOKIE]
    factories.login(client, admin)
    second = client.cookies[SESSION_COOKIE]
    assert first != second
    assert len(db.exec(select(AuthSession)).all()) == 1
    client.post("/logout", follow_redirects=False)
    assert db.exec(select(AuthSession)).all() == []
    client.cookies.set(SESSION_COOKIE, second)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_failed_logins_are_throttled(client: TestClient, admin: factories.UserWithPassword) -> None:
    for _ in range(10):
        client.post("/login", data={"email": admin.email, "password": "wrong-password"})
    response = client.post("/login", data={"email": admin.email, "password": admin.password})
    assert response.status_code == 429


def test_deactivated_user_cannot_log_in_and_loses_sessions(
    client: TestClient, db: Session, rater: factories.UserWithPassword
) -> None:
    factories.login(client, rater)
    rater.user.is_active = False
    db.add(rater.user)
    db.flush()
    assert client.get("/rate", follow_redirects=False).status_code in (303, 307)
    response = client.post("/login", data={"email": rater.email, "password": rater.password})
    assert response.status_code == 401


def test_anonymous_is_sent_to_login_and_htmx_gets_hx_redirect(client: TestClient) -> None:
    plain = client.get("/", follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"].startswith("/login?next=")
    htmx = client.get("/", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.headers["HX-Redirect"].startswith("/login")


def test_the_app_hashes_at_argon2s_default_cost_and_cheap_test_hashes_still_verify() -> None:
    """The suite hashes its passwords cheaply (tests/conftest.py); the app, imported fresh,
    hashes with argon2-cffi's defaults, and a stored hash verifies with the cost it was made
    with."""
    import subprocess
    import sys

    from argon2 import PasswordHasher

    from app.accounts import security

    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "from app.accounts import security; print(security.hash_password('x'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    default = PasswordHasher()
    assert f"m={default.memory_cost},t={default.time_cost},p={default.parallelism}" in fresh
    assert default.memory_cost >= 19 * 1024 and default.time_cost >= 2
    stored = default.hash("a long password")
    assert security.verify_password(stored, "a long password")
    assert not security.verify_password(stored, "another password")
    cheap = security.hash_password("a long password")
    assert "m=8,t=1" in cheap and security.verify_password(cheap, "a long password")
