"""Personal API tokens: created on the account page or the CLI, shown once, stored hashed,
used as ``Authorization: Bearer``, scoped, expiring, revocable, throttled, every use recorded."""

import hashlib
import logging
import re
import sys
import types
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.accounts import tokens
from app.accounts.service import AccountError
from app.config import get_settings
from app.db import session_scope
from app.models import ApiToken, LoginAttempt, TokenScope, utcnow
from tests import factories
from tests.html import find

TOKEN_RE = re.compile(r"sdilab_[A-Za-z0-9_-]{43}")


def _bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def _create_on_page(
    client: TestClient, name: str = "nb", scope: str = "read", days: int = 30
) -> str:
    response = client.post("/account/tokens", data={"name": name, "scope": scope, "days": days})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    (shown,) = find(response.text, "code", data_new_token="")
    raw = shown.text
    assert TOKEN_RE.fullmatch(raw)
    return raw


@pytest.fixture
def anon(client: TestClient) -> TestClient:
    """The same app without the login cookie: only the token authenticates."""
    client.cookies.clear()
    return client


def test_an_admin_creates_a_token_on_the_account_page_and_scripts_read_with_it(
    admin_client: TestClient, db: Session
) -> None:
    raw = _create_on_page(admin_client, name="notebook", scope="admin")
    admin_client.cookies.clear()
    assert admin_client.get("/api/v1/runs").status_code == 401
    response = admin_client.get("/api/v1/runs", headers=_bearer(raw))
    assert response.status_code == 200, response.text
    (row,) = db.exec(select(ApiToken)).all()
    db.refresh(row)
    assert (row.name, row.scope) == ("notebook", "admin")
    assert row.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert row.last_used_at is not None and row.last_used_from == "testclient"
    assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)


def test_the_token_is_shown_once_and_never_kept_or_echoed(
    admin_client: TestClient, db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    raw = _create_on_page(admin_client, scope="admin")
    assert raw not in admin_client.get("/account").text
    assert raw not in admin_client.get("/api/v1/account/tokens").text
    for table in ("api_tokens", "login_attempts", "auth_sessions"):
        for row in db.execute(text(f"SELECT * FROM {table}")).all():
            assert all(raw not in str(value) for value in row), table
    admin_client.cookies.clear()
    with caplog.at_level(logging.DEBUG):
        ok = admin_client.get("/api/v1/runs", headers=_bearer(raw))
        wrong = admin_client.get("/api/v1/runs", headers=_bearer(raw + "x"))
    assert ok.status_code == 200
    assert wrong.status_code == 401 and raw not in wrong.text
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert raw not in caplog.text


def test_a_revoked_token_is_refused(admin_client: TestClient, db: Session) -> None:
    raw = _create_on_page(admin_client)
    (row,) = db.exec(select(ApiToken)).all()
    assert admin_client.post(f"/account/tokens/{row.id}/revoke").status_code in {200, 303}
    page = admin_client.get("/account").text
    assert "revoked" in page
    admin_client.cookies.clear()
    response = admin_client.get("/api/v1/account/tokens", headers=_bearer(raw))
    assert response.status_code == 401
    assert "revoked or expired" in response.json()["detail"]


def test_an_expired_token_is_refused(
    rater: factories.UserWithPassword, db: Session, anon: TestClient
) -> None:
    token, raw = tokens.create_token(db, rater.user, "old", TokenScope.read, days=1)
    assert anon.get("/api/v1/account/tokens", headers=_bearer(raw)).status_code == 200
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.add(token)
    db.flush()
    assert anon.get("/api/v1/account/tokens", headers=_bearer(raw)).status_code == 401


def test_a_read_token_cannot_post_and_an_admin_token_can(
    admin: factories.UserWithPassword, db: Session, anon: TestClient
) -> None:
    read, read_raw = tokens.create_token(db, admin.user, "r", TokenScope.read)
    _write, write_raw = tokens.create_token(db, admin.user, "w", TokenScope.admin)
    url = f"/api/v1/account/tokens/{read.id}/revoke"
    refused = anon.post(url, headers=_bearer(read_raw))
    assert refused.status_code == 403
    assert "read token" in refused.json()["detail"]
    db.refresh(read)
    assert read.revoked_at is None
    done = anon.post(url, headers=_bearer(write_raw))
    assert done.status_code == 200 and done.json()["live"] is False


def test_a_raters_token_reaches_only_what_a_rater_reaches(
    rater: factories.UserWithPassword, db: Session, anon: TestClient
) -> None:
    _token, raw = tokens.create_token(db, rater.user, "mine", TokenScope.read)
    assert anon.get("/api/v1/account/tokens", headers=_bearer(raw)).status_code == 200
    for url in ("/api/v1/runs", "/api/v1/sets", "/api/v1/runs/1/metrics"):
        response = anon.get(url, headers=_bearer(raw))
        assert response.status_code == 403, url
    with pytest.raises(AccountError, match="Only admins"):
        tokens.create_token(db, rater.user, "x", TokenScope.admin)


def test_a_rater_creates_only_read_tokens_on_the_page(rater_client: TestClient) -> None:
    options = find(rater_client.get("/account").text, "option")
    assert [o.attrs["value"] for o in options] == ["read"]
    refused = rater_client.post("/account/tokens", data={"name": "x", "scope": "admin", "days": 5})
    assert refused.status_code == 422 and "Only admins" in refused.text


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": " ", "scope": "read", "days": 5}, "name of 1 to 100"),
        ({"name": "x", "scope": "root", "days": 5}, "read or admin"),
        ({"name": "x", "scope": "read", "days": 0}, "1 to 366 days"),
        ({"name": "x", "scope": "read", "days": 9999}, "1 to 366 days"),
    ],
)
def test_bad_token_forms_are_refused_with_a_message(
    admin_client: TestClient, db: Session, form: dict[str, object], message: str
) -> None:
    response = admin_client.post("/account/tokens", data=form)
    assert response.status_code == 422
    assert message in response.text
    assert db.exec(select(ApiToken)).all() == []


def test_the_bearer_token_wins_over_the_cookie(admin_client: TestClient) -> None:
    """A Bearer request never falls back to the session cookie (so skipping CSRF is safe)."""
    assert admin_client.get("/api/v1/runs").status_code == 200
    assert admin_client.get("/api/v1/runs", headers=_bearer("sdilab_wrong")).status_code == 401
    assert admin_client.get("/api/v1/runs", headers={"Authorization": "Bearer "}).status_code == 401


def test_bearer_requests_skip_the_cross_site_check_but_cookies_do_not(
    admin: factories.UserWithPassword, admin_client: TestClient, db: Session
) -> None:
    token, raw = tokens.create_token(db, admin.user, "w", TokenScope.admin)
    url = f"/api/v1/account/tokens/{token.id}/revoke"
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert admin_client.post(url, headers=cross).status_code == 403
    db.refresh(token)
    assert token.revoked_at is None
    assert admin_client.post(url, headers=cross | _bearer(raw)).status_code == 200


def test_a_token_on_an_html_page_is_ignored(
    admin: factories.UserWithPassword, db: Session, anon: TestClient
) -> None:
    _token, raw = tokens.create_token(db, admin.user, "w", TokenScope.admin)
    response = anon.get("/runs", headers=_bearer(raw), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_wrong_tokens_are_throttled_like_logins(
    admin: factories.UserWithPassword, db: Session, anon: TestClient
) -> None:
    _token, raw = tokens.create_token(db, admin.user, "good", TokenScope.read)
    limit = get_settings().login_attempts_per_15min
    for i in range(limit):
        assert anon.get("/api/v1/runs", headers=_bearer(f"sdilab_guess{i}")).status_code == 401
    throttled = anon.get("/api/v1/runs", headers=_bearer(raw))
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "900"
    keys = {a.key for a in db.exec(select(LoginAttempt)).all()}
    assert keys == {"api-ip:testclient"}


def test_every_use_is_recorded(
    admin: factories.UserWithPassword, db: Session, anon: TestClient
) -> None:
    token, raw = tokens.create_token(db, admin.user, "nb", TokenScope.read)
    assert token.last_used_at is None
    anon.get("/api/v1/runs", headers=_bearer(raw))
    db.refresh(token)
    first = token.last_used_at
    assert first is not None and token.last_used_from == "testclient"
    # A use that ends in an error (no such run) is recorded too.
    assert anon.get("/api/v1/runs/999999", headers=_bearer(raw)).status_code == 404
    db.refresh(token)
    assert token.last_used_at is not None and token.last_used_at >= first
    listed = anon.get("/api/v1/account/tokens", headers=_bearer(raw)).json()
    assert listed[0]["last_used_from"] == "testclient"
    assert "token_hash" not in listed[0]


def test_a_deactivated_users_token_is_refused(
    rater: factories.UserWithPassword, db: Session, anon: TestClient
) -> None:
    _token, raw = tokens.create_token(db, rater.user, "nb", TokenScope.read)
    rater.user.is_active = False
    db.add(rater.user)
    db.flush()
    assert anon.get("/api/v1/account/tokens", headers=_bearer(raw)).status_code == 401


def test_the_cli_creates_lists_and_revokes(committed_db: Engine) -> None:
    from app.cli import cli

    with session_scope(committed_db) as session:
        email = factories.make_user(session, role="admin").email
    runner = CliRunner()
    made = runner.invoke(cli, ["tokens", "create", email, "--name", "cli", "--scope", "admin"])
    assert made.exit_code == 0, made.output
    (raw,) = TOKEN_RE.findall(made.output)
    listed = runner.invoke(cli, ["tokens", "list", "--email", email])
    assert listed.exit_code == 0 and "cli" in listed.output and raw not in listed.output
    with session_scope(committed_db) as session:
        (row,) = session.exec(select(ApiToken)).all()
    assert row.scope == "admin" and row.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    revoked = runner.invoke(cli, ["tokens", "revoke", str(row.id)])
    assert revoked.exit_code == 0, revoked.output
    with session_scope(committed_db) as session:
        row = session.exec(select(ApiToken)).one()
        assert row.revoked_at is not None
    assert runner.invoke(cli, ["tokens", "create", "nobody@example.org"]).exit_code == 1
    assert runner.invoke(cli, ["tokens", "revoke", "999999"]).exit_code == 1


def _readme_example() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## JSON API for notebooks", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return str(code)


class _Requests(types.ModuleType):
    """Just enough of ``requests`` for the README's lines, sent to the test client."""

    def __init__(self, client: TestClient) -> None:
        super().__init__("requests")
        outer = self

        class Session:
            def __init__(self) -> None:
                self.headers: dict[str, str] = {}

            def get(self, url: str, **kwargs: Any) -> Any:
                outer.urls.append(url)
                path = re.sub(r"^https?://[^/]+", "", url)
                response = client.get(path, headers=self.headers, **kwargs)
                response.raise_for_status()
                return response

        self.Session = Session
        self.urls: list[str] = []


def test_the_readme_example_reads_a_runs_metrics_and_replies_into_pandas(
    admin: factories.UserWithPassword,
    db: Session,
    anon: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's lines as written, with a test run's id, a real token, and the test
    client behind ``requests``."""
    run = factories.make_run(db)  # 6 statements x 2 kinds x 2 arms
    _token, raw = tokens.create_token(db, admin.user, "notebook", TokenScope.read)
    code = _readme_example()
    assert len(code.strip().splitlines()) == 5 and "/api/v1/runs/7/" in code
    fake = _Requests(anon)
    monkeypatch.setitem(sys.modules, "requests", fake)
    namespace: dict[str, Any] = {}
    exec(code.replace("/runs/7/", f"/runs/{run.id}/").replace("sdilab_…", raw), namespace)
    metrics, replies = namespace["metrics"], namespace["replies"]
    assert fake.urls and all(url.startswith("http://127.0.0.1:8000/api/v1/") for url in fake.urls)
    assert set(metrics["arm"]) == {"baseline", "sdi"} and (metrics["run_id"] == run.id).all()
    assert {"kind", "n", "accuracy.value", "accuracy.low", "accuracy.high"} <= set(metrics)
    assert len(replies) == 2 * 2 * 6 and (replies["run_id"] == run.id).all()
    assert {"statement", "reply", "label", "mean_helpfulness"} <= set(replies.columns)


def test_the_account_page_renders_plain_and_htmx(
    rater_client: TestClient, htmx_headers: dict[str, str]
) -> None:
    response = rater_client.get("/account", headers=htmx_headers)
    assert response.status_code == 200
    assert find(response.text, "form", action="/account/tokens")
    assert bool(find(response.text, "html")) != bool(htmx_headers)
