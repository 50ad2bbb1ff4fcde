"""`sdilab serve --workers 2`: two processes share nothing but the database. A session made
by one is honoured (and ended) by the other; a write through one is read through the other;
failed logins counted by both throttle the account."""

import http.client
import re
from urllib.parse import urlencode

import pytest
from sqlalchemy.engine import Engine

from app.db import session_scope
from tests import factories
from tests.scale.processes import WebServer, web_server

pytestmark = pytest.mark.slow
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def call(
    server: WebServer,
    conn: http.client.HTTPConnection,
    pid: int,
    method: str,
    path: str,
    *,
    cookie: str = "",
    form: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    headers = {**(FORM if form is not None else {}), **({"Cookie": cookie} if cookie else {})}
    conn.request(method, path, body=urlencode(form) if form is not None else None, headers=headers)
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    # The connection is kept alive: the same process answered.
    assert server.pid_serving(conn) == pid
    return response


def session_cookie(response: http.client.HTTPResponse) -> str:
    match = re.search(r"sdilab_session=([^;]+)", response.getheader("set-cookie") or "")
    assert match, response.getheaders()
    return f"sdilab_session={match.group(1)}"


def test_two_web_processes_share_sessions_writes_and_throttling(committed_db: Engine) -> None:
    with session_scope(committed_db) as s:
        admin = factories.make_user(s, role="admin")
        rater = factories.make_user(s, role="rater")
    with web_server(2, env={"SDILAB_LOGIN_ATTEMPTS_PER_15MIN": "3"}) as server:
        (a, conn_a), (b, conn_b) = server.one_connection_per_worker().items()
        assert a != b

        login = {"email": admin.email, "password": admin.password, "next": "/models"}
        response = call(server, conn_a, a, "POST", "/login", form=login)
        assert response.status == 303
        cookie = session_cookie(response)

        # The other process knows the session (it lives in the database).
        assert call(server, conn_b, b, "GET", "/models", cookie=cookie).status == 200
        assert call(server, conn_b, b, "GET", "/", cookie=cookie).status == 200
        assert call(server, conn_b, b, "GET", "/models").status != 200  # no cookie, no page

        # A write through one process is read through the other.
        new_model = {
            "name": "written-by-b",
            "provider": "openai",
            "model_id": "m",
            "base_url": "http://127.0.0.1:9/v1",
        }
        created = call(server, conn_b, b, "POST", "/models/new", cookie=cookie, form=new_model)
        assert created.status == 303
        listing = call(server, conn_a, a, "GET", "/models", cookie=cookie)
        assert listing.status == 200 and b"written-by-b" in listing.body  # type: ignore[attr-defined]

        # Logging out through one process ends the session in the other.
        assert call(server, conn_b, b, "POST", "/logout", cookie=cookie).status == 303
        after = call(server, conn_a, a, "GET", "/models", cookie=cookie)
        assert after.status in (302, 303) and "/login" in (after.getheader("location") or "")

        # Failed logins counted by both processes throttle the account (limit 3).
        wrong = {"email": rater.email, "password": "not-the-password"}
        for pid, conn in ((a, conn_a), (b, conn_b), (a, conn_a)):
            assert call(server, conn, pid, "POST", "/login", form=wrong).status == 401
        right = {"email": rater.email, "password": rater.password}
        assert call(server, conn_b, b, "POST", "/login", form=right).status == 429
        conn_a.close()
        conn_b.close()
