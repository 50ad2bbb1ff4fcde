"""Every route of the app, requested as anonymous, rater and admin: allowed or refused.

A route's role comes from its dependencies (AdminUser -> admin, CurrentUser -> rater). A route
with neither must be listed in PUBLIC, and a rater-level route outside the rating pages must be
listed in RATER: a new route that is in neither table makes this test fail until someone
decides who may use it.
"""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import _IncludedRouter
from fastapi.testclient import TestClient
from sqlmodel import Session
from starlette.routing import Mount, Route

from app.accounts import service
from app.accounts.deps import SESSION_COOKIE, admin_user, current_user, sign_token
from app.db import get_session
from app.main import create_app
from app.models import User

_serial = itertools.count()

# Routes anyone may call (the credential, if any, is in the request itself).
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/invite/{token}"),
    ("POST", "/invite/{token}"),
    ("GET", "/healthz"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
}

# Routes for any logged-in user (raters included). Everything else needing a login is admin.
RATER = {
    ("GET", "/"),  # redirects raters to /rate
    ("GET", "/rate"),
    ("POST", "/rate/{round_id}/start"),
    ("POST", "/rate/{round_id}/items/{token}"),
    ("POST", "/rate/{round_id}/items/{token}/skip"),
    ("POST", "/rate/{round_id}/undo"),
    ("GET", "/rate/guidelines"),
    ("GET", "/rate/mine"),
    ("GET", "/rate/mine/{rating_id}"),
    ("POST", "/rate/mine/{rating_id}"),
    ("GET", "/account"),  # one's own API tokens
    ("POST", "/account/tokens"),
    ("POST", "/account/tokens/{token_id}/revoke"),
    ("GET", "/api/account/tokens"),
    ("POST", "/api/account/tokens/{token_id}/revoke"),
    ("GET", "/api/v1/account/tokens"),
    ("POST", "/api/v1/account/tokens/{token_id}/revoke"),
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    role: str  # "public", "rater" or "admin", from the dependencies
    int_params: frozenset[str]


def _calls(dependant: Any) -> Iterator[Any]:
    for dep in getattr(dependant, "dependencies", []) or []:
        yield dep.call
        yield from _calls(dep)


def _role(dependant: Any) -> str:
    calls = set(_calls(dependant))
    if admin_user in calls:
        return "admin"
    if current_user in calls:
        return "rater"
    return "public"


def _int_params(dependant: Any) -> frozenset[str]:
    names = set()
    for param in getattr(dependant, "path_params", []) or []:
        annotation = getattr(getattr(param, "field_info", None), "annotation", None)
        if annotation is int:
            names.add(param.name)
    return frozenset(names)


def _walk(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        if isinstance(route, _IncludedRouter):
            yield from _walk(route.effective_candidates())
        else:
            yield route


def endpoints() -> list[Endpoint]:
    found = []
    for route in _walk(create_app().routes):
        if isinstance(route, Mount):
            continue  # static files
        methods = set(getattr(route, "methods", None) or ()) - {"HEAD"}
        dependant = getattr(route, "dependant", None)
        role = "public" if isinstance(route, Route) and dependant is None else _role(dependant)
        for method in sorted(methods):
            found.append(Endpoint(method, route.path, role, _int_params(dependant)))
    return found


ENDPOINTS = endpoints()


def test_every_route_is_classified() -> None:
    problems = []
    for ep in ENDPOINTS:
        key = (ep.method, ep.path)
        if ep.role == "public" and key not in PUBLIC:
            problems.append(f"{key}: no AdminUser/CurrentUser dependency and not in PUBLIC")
        if ep.role != "public" and key in PUBLIC:
            problems.append(f"{key}: listed in PUBLIC but requires a login")
        if ep.role == "rater" and key not in RATER:
            problems.append(f"{key}: open to raters (CurrentUser) but not listed in RATER")
        if ep.role == "admin" and key in RATER:
            problems.append(f"{key}: listed in RATER but requires an admin")
    known = {(ep.method, ep.path) for ep in ENDPOINTS}
    problems += [f"{key}: in a table but no such route" for key in (PUBLIC | RATER) - known]
    assert not problems, "\n".join(problems)


def _url(ep: Endpoint) -> str:
    path = ep.path
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        name = path[start + 1 : end].split(":")[0]
        path = path[:start] + ("999999" if name in ep.int_params else "zzz") + path[end + 1 :]
    return path


@pytest.fixture
def app_client(db: Session) -> Iterator[TestClient]:
    app = create_app()

    def _session() -> Iterator[Session]:
        yield db
        db.commit()

    app.dependency_overrides[get_session] = _session
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _user(db: Session, role: str) -> User:
    """A user with a session but no password (hashing one per test would be slow)."""
    user = User(email=f"matrix-{role}-{next(_serial)}@example.org", role=role)
    db.add(user)
    db.flush()
    return user


def _cookie_for(db: Session, user: User | None) -> dict[str, str]:
    if user is None:
        return {}
    token = service.start_session(db, user, 1)
    return {SESSION_COOKIE: sign_token(token)}


def _refused_as_anonymous(ep: Endpoint, response: Any) -> bool:
    if ep.path.startswith("/api/"):
        return bool(response.status_code == 401)
    target = response.headers.get("location", "") or response.headers.get("HX-Redirect", "")
    return response.status_code in (200, 303) and target.startswith("/login")


def _allowed(response: Any) -> bool:
    target = response.headers.get("location", "") or response.headers.get("HX-Redirect", "")
    return response.status_code not in (401, 403) and not target.startswith("/login?next=")


@pytest.mark.parametrize("ep", ENDPOINTS, ids=[f"{e.method} {e.path}" for e in ENDPOINTS])
def test_access(app_client: TestClient, db: Session, ep: Endpoint) -> None:
    users = {
        "anonymous": None,
        "rater": _user(db, "rater"),
        "admin": _user(db, "admin"),
    }
    for who, user in users.items():
        app_client.cookies.clear()
        for name, value in _cookie_for(db, user).items():
            app_client.cookies.set(name, value)
        response = app_client.request(ep.method, _url(ep), follow_redirects=False)
        if ep.role == "public":
            assert response.status_code not in (401, 403), (who, response.status_code)
        elif who == "anonymous":
            assert _refused_as_anonymous(ep, response), (who, response.status_code)
        elif who == "rater" and ep.role == "admin":
            assert response.status_code == 403, (who, response.status_code)
        else:
            assert _allowed(response), (who, response.status_code, response.text[:200])
