"""Property-based requests to every operation of the app: no 5xx.

Schemathesis generates path, query and form values from the app's OpenAPI schema (ids beyond
what the database holds included, which used to be 500s) and sends them logged in as an admin:
the session cookie everywhere, and an admin-scope API token on the JSON API. The schema is the
served one (/api/openapi.json: the /api/v1 operations) plus the routes it leaves out, the pages
and their forms and the unversioned /api/ paths (tests/openapi.py). The state-changing routes
are fuzzed too (the test client sends no ``Sec-Fetch-Site``, like a script); the three that
would log the fuzzer out are left out. Each operation runs in the test's rolled-back
transaction, on SQLite or on Postgres (SDILAB_TEST_DATABASE_URL). The run's figures are
printed at the end of the session (tests/fuzz/conftest.py).
"""

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from sqlmodel import Session

from app.accounts import service, tokens
from app.accounts.deps import SESSION_COOKIE, sign_token
from app.db import get_session
from app.main import OPENAPI_URL, create_app
from app.models import TokenScope
from tests import factories
from tests.fuzz.figures import FUZZ
from tests.openapi import app_with_every_route

APP = app_with_every_route()
# Logging out, or revoking the fuzzer's own token, would only turn the rest into 401s.
SCHEMA = (
    schemathesis.openapi.from_asgi(OPENAPI_URL, APP)
    .exclude(path="/logout")
    .exclude(path_regex=r"/tokens/\{token_id\}/revoke$")
)
EXAMPLES_PER_OPERATION = 4
SAFETY_NET = "larger than the database can hold"


@pytest.fixture
def credentials(db: Session) -> Iterator[dict[str, str]]:
    """An admin's session cookie and admin token, on the app bound to the test's session."""

    def _session() -> Iterator[Session]:
        yield db
        db.commit()

    APP.dependency_overrides[get_session] = _session
    admin = factories.make_user(db, role="admin").user
    _token, raw = tokens.create_token(db, admin, "fuzz", TokenScope.admin)
    cookie = sign_token(service.start_session(db, admin, hours=1))
    yield {"cookie": cookie, "token": raw}
    APP.dependency_overrides.clear()


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_operation_answers_a_server_error(
    case: schemathesis.Case, credentials: dict[str, str]
) -> None:
    headers = {}
    if case.path.startswith("/api/"):
        headers["Authorization"] = f"Bearer {credentials['token']}"
    response = case.call(headers=headers, cookies={SESSION_COOKIE: credentials["cookie"]})
    FUZZ.count(case.operation.method, case.operation.path, response.status_code)
    assert response.status_code < 500, case.as_curl_command()
    # The bounds on the parameters must hold on their own: the OverflowError handler in
    # app.main is only a safety net, and firing here means a number escaped its bound.
    assert SAFETY_NET not in response.text, case.as_curl_command()


def _fuzzed() -> set[str]:
    return {
        f"{op.method.upper()} {op.path}"
        for op in (result.ok() for result in SCHEMA.get_all_operations())
    }


def test_the_fuzzer_sees_the_whole_schema() -> None:
    """The run above covers the operations it should (a schema that failed to load, or a
    filter gone wrong, would fuzz nothing and pass): the pages, and every /api/v1 operation."""
    fuzzed = _fuzzed()
    assert len(fuzzed) >= 100
    served = create_app().openapi()["paths"]
    public = {f"{method.upper()} {path}" for path, ops in served.items() for method in ops}
    left_out = {"POST /api/v1/account/tokens/{token_id}/revoke"}
    assert public - left_out <= fuzzed
    assert {"GET /api/v1/runs/{run_id}/replies", "GET /api/v1/runs/{run_id}/ratings"} <= fuzzed
    assert "GET /rating/rounds/{round_id}" in fuzzed
