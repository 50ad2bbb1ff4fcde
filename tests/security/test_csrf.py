"""CSRF: every state-changing route refuses a request a browser marks as cross-site, and
accepts the same request from the app's own pages (plain form post or HTMX)."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts import service
from app.accounts.deps import SESSION_COOKIE, sign_token
from app.db import get_session
from app.main import create_app
from app.models import User
from tests.test_access_matrix import ENDPOINTS, Endpoint, _url

UNSAFE = [ep for ep in ENDPOINTS if ep.method not in ("GET", "HEAD", "OPTIONS")]
REFUSED = "Cross-site request refused."

CROSS_SITE = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another site to us
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
    {"Origin": "https://evil.example"},
    {"Origin": "null"},  # sandboxed iframe, data: URL
    {"Origin": "http://testserver.evil.example"},
    {"Origin": "http://testserver:8080"},
    {"Origin": "http://evil.example", "Referer": "http://testserver/sets"},
]
SAME_SITE = [
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver", "HX-Request": "true"},
    {"Origin": "http://testserver"},  # an older browser without Fetch Metadata
    {},  # a script (curl): no ambient browser cookies to abuse
]


@pytest.fixture
def app_client(db: Session) -> Iterator[TestClient]:
    app = create_app()

    def _session() -> Iterator[Session]:
        yield db
        db.commit()

    app.dependency_overrides[get_session] = _session
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _login_as_admin(client: TestClient, db: Session) -> User:
    user = User(email="csrf-admin@example.org", role="admin")
    db.add(user)
    db.flush()
    client.cookies.set(SESSION_COOKIE, sign_token(service.start_session(db, user, 1)))
    return user


def test_there_are_state_changing_routes_to_check() -> None:
    assert len(UNSAFE) >= 40
    assert {("POST", "/login"), ("POST", "/logout"), ("POST", "/users")} <= {
        (ep.method, ep.path) for ep in UNSAFE
    }


@pytest.mark.parametrize("ep", UNSAFE, ids=[f"{e.method} {e.path}" for e in UNSAFE])
def test_cross_site_is_refused(app_client: TestClient, db: Session, ep: Endpoint) -> None:
    _login_as_admin(app_client, db)
    for headers in CROSS_SITE:
        response = app_client.request(
            ep.method,
            _url(ep),
            data={"name": "x", "email": "a@b.c", "password": "p" * 12},
            headers=headers,
            follow_redirects=False,
        )
        assert response.status_code == 403 and response.text == REFUSED, (headers, response.text)


@pytest.mark.parametrize("ep", UNSAFE, ids=[f"{e.method} {e.path}" for e in UNSAFE])
def test_same_site_is_let_through(app_client: TestClient, db: Session, ep: Endpoint) -> None:
    _login_as_admin(app_client, db)
    for headers in SAME_SITE:
        response = app_client.request(ep.method, _url(ep), headers=headers, follow_redirects=False)
        assert response.text != REFUSED, headers
        assert response.status_code < 500, (headers, response.status_code, response.text[:300])


def test_a_refused_post_changes_nothing(app_client: TestClient, db: Session) -> None:
    _login_as_admin(app_client, db)
    before = len(db.exec(select(User)).all())
    response = app_client.post(
        "/users",
        data={"email": "intruder@example.org", "password": "p" * 12, "role": "admin"},
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert len(db.exec(select(User)).all()) == before
    # The same form from our own page creates the user.
    response = app_client.post(
        "/users",
        data={"email": "colleague@example.org", "password": "p" * 12, "role": "rater"},
        headers={
            "Sec-Fetch-Site": "same-origin",
            "Origin": "http://testserver",
            "HX-Request": "true",
        },
        follow_redirects=False,
    )
    assert response.status_code < 400, response.text[:300]
    assert db.exec(select(User).where(User.email == "colleague@example.org")).first() is not None


def test_cross_site_logout_does_not_end_the_session(app_client: TestClient, db: Session) -> None:
    _login_as_admin(app_client, db)
    refused = app_client.post("/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    assert app_client.get("/users", follow_redirects=False).status_code == 200


def test_method_override_is_not_a_way_round(app_client: TestClient, db: Session) -> None:
    _login_as_admin(app_client, db)
    for method in ("PUT", "PATCH", "DELETE"):
        response = app_client.request(
            method, "/users", headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False
        )
        assert response.status_code == 403
    response = app_client.post(
        "/users?_method=GET", headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False
    )
    assert response.status_code == 403
